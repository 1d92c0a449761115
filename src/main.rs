fn main() {
    std::process::exit(gitfleet::cli::main());
}
