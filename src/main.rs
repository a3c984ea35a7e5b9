//! The `sluice` command line.

fn main() {
    println!("sluice: being written");
}
