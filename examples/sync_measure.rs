//! Measure A/V sync in a recording of the sync signal (`TestPicture::Sync`): the offset of
//! each flash/click pair as ffmpeg decodes the file (a segment, an MP4 or an HLS playlist).
//!
//! `cargo run --example sync_measure -- FILE...`

fn main() -> anyhow::Result<()> {
    let files: Vec<String> = std::env::args().skip(1).collect();
    anyhow::ensure!(!files.is_empty(), "usage: sync_measure FILE...");
    for file in files {
        let report = roomrec::media::measure_sync(std::path::Path::new(&file))?;
        for (at, offset) in &report.pairs {
            println!("{file}: flash at {at:.3} s, click {:+.1} ms", offset * 1e3);
        }
        println!("{file}: {}", report.summary());
    }
    Ok(())
}
