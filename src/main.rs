fn main() {
    println!("sweep: under construction");
}
