//! Writes the seeds of every target's corpus (`halfveil_fuzz::seeds`) to
//! `fuzz/corpus/NAME/seed-*`, replacing the seeds written before; inputs a fuzzing run
//! added (named by their hash) stay. Run after a wire format or the world changes:
//! `cargo run -p halfveil-fuzz --bin halfveil-fuzz-seeds`.

use std::path::Path;

fn main() -> std::io::Result<()> {
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
    let seeds = halfveil_fuzz::seeds::seeds();
    for (target, _) in halfveil_fuzz::TARGETS {
        let folder = corpus.join(target);
        std::fs::create_dir_all(&folder)?;
        for entry in std::fs::read_dir(&folder)? {
            let path = entry?.path();
            let stale = path
                .file_name()
                .and_then(|name| name.to_str())
                .is_some_and(|name| name.starts_with("seed-"));
            if stale {
                std::fs::remove_file(path)?;
            }
        }
    }
    for seed in &seeds {
        let path = corpus.join(seed.target).join(format!("seed-{}", seed.name));
        std::fs::write(&path, &seed.bytes)?;
    }
    println!("wrote {} seeds under {}", seeds.len(), corpus.display());
    Ok(())
}
