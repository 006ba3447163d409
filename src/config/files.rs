//! Reading the files the configuration names, so that a missing, unreadable or mistaken file
//! (a key where a certificate belongs) is a configuration problem rather than a failure at
//! the first connection. Messages name the path but never repeat what the files hold.

use std::path::Path;

use rustls_pemfile::Item;

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
    for item in rustls_pemfile::read_all(&mut bytes.as_slice()) {
        match item {
            Ok(Item::X509Certificate(_)) => certificates += 1,
            Ok(Item::Pkcs1Key(_) | Item::Pkcs8Key(_) | Item::Sec1Key(_)) => keys += 1,
            Ok(_) => {}
            Err(e) => return Err(format!("'{shown}' is not a valid PEM file: {e}")),
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
