//! Records the test source through `media::spawn` for a while: roomrecd's media path, without
//! MQTT or SQLite, for `benches/media.sh` to measure (CPU, peak RSS) against gst-launch and
//! ffmpeg. Prints what it recorded; the script does the measuring with `/usr/bin/time`.
//!
//!   media_record DIR SECONDS [WIDTH HEIGHT FPS KBPS [ball|bars]]

use std::path::PathBuf;
use std::time::Duration;

use roomrec::media::{self, MediaCommand, MediaFact, MediaSettings, TestPicture};
use roomrec::protocol::Id;

fn arg(args: &[String], i: usize, default: u32) -> u32 {
    args.get(i).and_then(|a| a.parse().ok()).unwrap_or(default)
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let dir = PathBuf::from(
        args.first()
            .map_or("/tmp/roomrec-media-bench", |s| s.as_str()),
    );
    let seconds = arg(&args, 1, 60);
    let settings = MediaSettings {
        segments_dir: dir.join("segments"),
        width: arg(&args, 2, 1280),
        height: arg(&args, 3, 720),
        framerate: arg(&args, 4, 30),
        video_bitrate_kbps: arg(&args, 5, 2500),
        test_picture: match args.get(6).map(String::as_str) {
            None | Some("ball") => TestPicture::Ball,
            Some("bars") => TestPicture::Bars,
            Some(other) => anyhow::bail!("unknown test picture {other:?}: ball or bars"),
        },
        ..MediaSettings::default()
    };
    let (tx, mut rx) = tokio::sync::mpsc::channel(1024);
    let handle = media::spawn(settings, 0, tx)?;
    let counter = tokio::spawn(async move {
        let (mut segments, mut bytes, mut ms) = (0u64, 0u64, 0u64);
        while let Some(fact) = rx.recv().await {
            match fact {
                MediaFact::Sealed(s) => {
                    segments += 1;
                    bytes += s.bytes;
                    ms += s.duration_ms;
                }
                MediaFact::Failed { message } | MediaFact::DiskFull { message } => {
                    eprintln!("media failed: {message}");
                }
                _ => {}
            }
        }
        (segments, bytes, ms)
    });
    handle.send(MediaCommand::SetCapture {
        recordings: vec![Id::parse("bench").map_err(anyhow::Error::msg)?],
        marks: Default::default(),
    });
    tokio::time::sleep(Duration::from_secs(u64::from(seconds))).await;
    handle.send(MediaCommand::SetCapture {
        recordings: vec![],
        marks: Default::default(),
    });
    handle.shutdown().await;
    let (segments, bytes, ms) = counter.await?;
    println!("roomrec media: {segments} segments, {bytes} bytes, {ms} ms sealed");
    Ok(())
}
