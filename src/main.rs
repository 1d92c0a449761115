/// mimalloc instead of the C library's allocator: the planner, the loader and the router
/// make and free many small objects (names, labels, request heads), and glibc's malloc
/// spends a visible share of their time in `malloc` / `free` (`benches/README.md`,
/// `benches/ROUTER.md`). The benches' counting allocator forwards to the same one.
///
/// Built without transparent huge pages (the crate's `no_thp`): with them, mimalloc asks
/// for 2 MiB pages on its arenas and the router's resident memory with 1,000 idle clients
/// grew from 36 to 53 MiB.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    std::process::exit(gitfleet::cli::main());
}
