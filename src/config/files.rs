//! Reading the files the configuration names, so that a missing, unreadable or mistaken file
//! (a key where a certificate belongs) is a configuration problem rather than a failure at
//! the first connection. Messages name the path but never repeat what the files hold.

use std::path::Path;

use rustls::pki_types::pem::{self, PemObject, SectionKind};

use super::Secret;

/// What a PEM file must hold.
#[derive(Clone, Copy)]
pub enum Pem {
    /// At least one certificate.
    Certificates,
    /// A private key (PKCS#1, PKCS#8 or SEC1).
    PrivateKey,
}

/// Reads a file the configuration names, saying which path failed and why.
fn read(path: &Path) -> Result<Vec<u8>, String> {
    let shown = path.display();
    match std::fs::metadata(path) {
        Ok(meta) if !meta.is_file() => return Err(format!("'{shown}' is not a regular file")),
        Ok(_) => {}
        Err(e) => return Err(format!("cannot read '{shown}': {e}")),
    }
    std::fs::read(path).map_err(|e| format!("cannot read '{shown}': {e}"))
}

/// Checks that `path` is a readable PEM file holding what `want` says; returns the path.
pub fn check_pem(path: &Path, want: Pem) -> Result<std::path::PathBuf, String> {
    let bytes = read(path)?;
    let shown = path.display();
    let mut certificates = 0;
    let mut keys = 0;
    // Every section with its kind; sections of unknown kinds are skipped.
    for section in <(SectionKind, Vec<u8>)>::pem_slice_iter(&bytes) {
        match section {
            Ok((SectionKind::Certificate, _)) => certificates += 1,
            Ok((
                SectionKind::RsaPrivateKey | SectionKind::PrivateKey | SectionKind::EcPrivateKey,
                _,
            )) => keys += 1,
            Ok(_) => {}
            Err(e) => {
                let why = pem_error(&e);
                return Err(format!("'{shown}' is not a valid PEM file: {why}"));
            }
        }
    }
    match want {
        Pem::Certificates if certificates == 0 => Err(format!(
            "'{shown}' holds no PEM certificate (-----BEGIN CERTIFICATE-----)"
        )),
        Pem::PrivateKey if keys == 0 => Err(format!(
            "'{shown}' holds no PEM private key (-----BEGIN PRIVATE KEY-----)"
        )),
        _ => Ok(path.to_path_buf()),
    }
}

/// A PEM parse error in words: the markers and lines it names as text, not as byte lists.
fn pem_error(e: &pem::Error) -> String {
    match e {
        // `end_marker` is the section's label, such as CERTIFICATE.
        pem::Error::MissingSectionEnd { end_marker } => {
            let label = String::from_utf8_lossy(end_marker);
            format!("no \"-----END {label}-----\" line")
        }
        pem::Error::IllegalSectionStart { line } => {
            format!(
                "malformed section start {:?}",
                String::from_utf8_lossy(line)
            )
        }
        other => other.to_string(),
    }
}

/// A password file: its whole contents, less one trailing newline.
pub fn read_password(path: &Path) -> Result<Secret, String> {
    let shown = path.display();
    let bytes = read(path)?;
    let text = String::from_utf8(bytes).map_err(|_| format!("'{shown}' is not UTF-8 text"))?;
    let password = text
        .strip_suffix('\n')
        .map(|t| t.strip_suffix('\r').unwrap_or(t))
        .unwrap_or(&text);
    match password.is_empty() {
        true => Err(format!("'{shown}' is empty")),
        false => Ok(Secret::new(password)),
    }
}

/// An AWS shared-credentials file: `aws_access_key_id` and `aws_secret_access_key` in its
/// `[default]` profile (or before any profile header).
pub fn read_s3_credentials(path: &Path) -> Result<(String, Secret), String> {
    let shown = path.display();
    let bytes = read(path)?;
    let text = String::from_utf8(bytes).map_err(|_| format!("'{shown}' is not UTF-8 text"))?;
    let mut id = None;
    let mut secret = None;
    let mut in_default = true;
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with(['#', ';']) {
            continue;
        }
        if let Some(header) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            in_default = header.trim() == "default";
            continue;
        }
        let Some((name, value)) = line.split_once('=') else {
            continue;
        };
        match (in_default, name.trim()) {
            (true, "aws_access_key_id") => id = Some(value.trim().to_string()),
            (true, "aws_secret_access_key") => secret = Some(value.trim().to_string()),
            _ => {}
        }
    }
    let missing = |what: &str| {
        format!("'{shown}' has no {what} in its [default] profile (AWS shared-credentials format)")
    };
    let id = id
        .filter(|s| !s.is_empty())
        .ok_or_else(|| missing("aws_access_key_id"))?;
    let secret = secret
        .filter(|s| !s.is_empty())
        .ok_or_else(|| missing("aws_secret_access_key"))?;
    Ok((id, Secret::new(secret)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pem_file(text: &str) -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("f.pem");
        std::fs::write(&path, text).expect("write");
        (dir, path)
    }

    /// Each key encoding a device may be given counts as a key; a certificate does not.
    #[test]
    fn private_keys_in_each_encoding_are_keys() {
        for label in ["PRIVATE KEY", "RSA PRIVATE KEY", "EC PRIVATE KEY"] {
            let (_dir, path) = pem_file(&format!(
                "-----BEGIN {label}-----\nAAAA\n-----END {label}-----\n"
            ));
            assert_eq!(
                check_pem(&path, Pem::PrivateKey),
                Ok(path.clone()),
                "{label}"
            );
            let e = check_pem(&path, Pem::Certificates).expect_err(label);
            assert!(e.contains("holds no PEM certificate"), "{label}: {e}");
        }
        let (_dir, path) =
            pem_file("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n");
        assert_eq!(check_pem(&path, Pem::Certificates), Ok(path.clone()));
        let e = check_pem(&path, Pem::PrivateKey).expect_err("a certificate is not a key");
        assert!(e.contains("holds no PEM private key"), "{e}");
    }

    /// A broken file is refused with a sentence naming the missing line, not a list of bytes.
    #[test]
    fn a_truncated_pem_file_names_the_missing_end_line() {
        let (_dir, path) = pem_file("-----BEGIN CERTIFICATE-----\nAAAA\n");
        let e = check_pem(&path, Pem::Certificates).expect_err("truncated");
        assert!(e.contains("is not a valid PEM file"), "{e}");
        assert!(e.contains("-----END CERTIFICATE-----"), "{e}");
        let (_dir, path) =
            pem_file("-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n");
        let e = check_pem(&path, Pem::Certificates).expect_err("bad base64");
        assert!(e.contains("is not a valid PEM file"), "{e}");
    }
}
