//! Writes the fuzz targets' seed inputs (`aisle_fuzz::corpus`) into their corpus directories,
//! replacing files of the same name and leaving others (what a fuzzer added) alone.

fn main() -> std::io::Result<()> {
    let mut written = 0;
    for seed in aisle_fuzz::corpus::seeds() {
        let dir = aisle_fuzz::corpus::dir(seed.target);
        std::fs::create_dir_all(&dir)?;
        std::fs::write(dir.join(&seed.name), &seed.bytes)?;
        written += 1;
    }
    let root = aisle_fuzz::corpus::dir("");
    let root = root.parent().unwrap_or(&root);
    println!("wrote {written} seeds under {}", root.display());
    Ok(())
}
