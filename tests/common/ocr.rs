//! Text read back from recorded video, as a viewer would see it: ffmpeg takes a frame out of a
//! file, segment or HLS playlist, and tesseract reads it (the watermark tests, W1–W4).

use std::path::Path;
use std::process::Command;

/// A region of the frame, in pixels: x, y, width, height.
pub type Crop = (u32, u32, u32, u32);

/// Reads frames into a temporary folder, looking for `text`.
pub struct Reader {
    work: tempfile::TempDir,
    /// The text sought, as capitals and digits only (how [`ocr`] reports what it read).
    want: String,
}

impl Reader {
    pub fn new(text: &str) -> Reader {
        Reader {
            work: tempfile::tempdir().expect("temp dir"),
            want: text
                .to_uppercase()
                .chars()
                .filter(|c| c.is_ascii_alphanumeric())
                .collect(),
        }
    }

    /// Whether OCR finds the text in the frame at `at_s` of video stream `stream` of `input`,
    /// within `crop`.
    pub fn reads(&self, input: &Path, stream: usize, at_s: f64, crop: Option<Crop>) -> bool {
        let png = self
            .work
            .path()
            .join(format!("f{}.png", name(input, stream, at_s, crop)));
        extract(input, stream, at_s, crop, "", &png);
        let read = ocr(&png);
        eprintln!(
            "OCR {} v:{stream} at {at_s} s {crop:?}: {read}",
            input.display()
        );
        read.contains(&self.want)
    }

    /// Whether OCR finds the text in a small still picture (a preview JPEG). Its text is a
    /// third the size of a 360p frame's and softened by JPEG, so the contrast is stretched
    /// before tesseract reads it (without that, tesseract read nothing in two of three).
    pub fn reads_picture(&self, picture: &Path) -> bool {
        let png = self
            .work
            .path()
            .join(format!("p{}.png", name(picture, 0, 0.0, None)));
        extract(picture, 0, 0.0, None, "eq=contrast=3,", &png);
        let read = ocr(&png);
        eprintln!("OCR {}: {read}", picture.display());
        read.contains(&self.want)
    }

    /// Whether OCR finds the text in at least two of the frames at `times` (stream 0): the
    /// test picture's ball crosses the middle of the frame and can hide part of a single row
    /// in one frame (as a hand in front of a camera would); a row that is not there is never
    /// read.
    pub fn reads_mostly(&self, input: &Path, times: &[f64], crop: Option<Crop>) -> bool {
        let read = times
            .iter()
            .filter(|at| self.reads(input, 0, **at, crop))
            .count();
        read >= 2.min(times.len())
    }
}

/// Writes frame `at_s` of video stream `stream` of `input` (a file, a playlist or a still
/// picture) to `out`, cropped, three times the
/// size, grey and negated (dark text on light, as tesseract reads best), with `extra` filters
/// (ending in a comma) before the grey.
fn extract(input: &Path, stream: usize, at_s: f64, crop: Option<Crop>, extra: &str, out: &Path) {
    let crop = crop
        .map(|(x, y, w, h)| format!("crop={w}:{h}:{x}:{y},"))
        .unwrap_or_default();
    let status = Command::new("ffmpeg")
        .args([
            "-v",
            "error",
            "-y",
            "-protocol_whitelist",
            "file,crypto,data",
        ])
        // No seek at 0: ffmpeg then drops a still picture's only frame (a JPEG's pts is 0).
        .args(if at_s > 0.0 {
            vec!["-ss".to_owned(), at_s.to_string()]
        } else {
            Vec::new()
        })
        .arg("-i")
        .arg(input)
        .args(["-map", &format!("0:v:{stream}"), "-frames:v", "1", "-vf"])
        .arg(format!(
            "{crop}scale=iw*3:ih*3:flags=lanczos,{extra}format=gray,negate"
        ))
        .arg(out)
        .status()
        .expect("ffmpeg runs (scripts/install-deps installs it)");
    assert!(
        status.success(),
        "ffmpeg could not take a frame of {}",
        input.display()
    );
    assert!(
        out.is_file(),
        "ffmpeg wrote no frame at {at_s} s of {}",
        input.display()
    );
}

/// The text tesseract reads in `png`, as capitals and digits only.
fn ocr(png: &Path) -> String {
    let out = Command::new("tesseract")
        .arg(png)
        // Sparse text; local (tiled Otsu) thresholds: a global one, pulled between the white
        // background and the black ball, classed the grey text as background.
        .args([
            "stdout",
            "--psm",
            "11",
            "-l",
            "eng",
            "-c",
            "thresholding_method=1",
        ])
        .output()
        .expect("tesseract runs (scripts/install-deps installs tesseract-ocr)");
    assert!(
        out.status.success(),
        "tesseract failed on {}: {}",
        png.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .to_uppercase()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .collect()
}

fn name(input: &Path, stream: usize, at_s: f64, crop: Option<Crop>) -> String {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    input.hash(&mut h);
    stream.hash(&mut h);
    at_s.to_bits().hash(&mut h);
    crop.hash(&mut h);
    format!("{:x}", h.finish())
}
