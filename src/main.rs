/// mimalloc instead of the C library's allocator: the planner, the loader and the router
/// make and free many small objects (names, labels, request heads), and glibc's malloc
/// spends a visible share of their time in `malloc` / `free` (`benches/README.md`,
/// `benches/ROUTER.md`). The benches' counting allocator forwards to the same one.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    std::process::exit(gitfleet::cli::main());
}
