//! Signing keys and checkpoints, in the formats of C2SP's signed-note and tlog-checkpoint specs
//! (the formats of Go's `golang.org/x/mod/sumdb/note`, so other tools can read them).
//!
//! A **checkpoint** is a note whose body is three lines, then a blank line, then signature lines:
//!
//! ```text
//! provenant/<archive id>/p3
//! 1200
//! <base64 of the 32-byte RFC 6962 root>
//!
//! — <key name> <base64(key id (4 bytes) ‖ Ed25519 signature (64 bytes))>
//! ```
//!
//! The signature is over the body (the three lines with their newlines). The key id is the
//! first four bytes of `SHA-256(key name ‖ "\n" ‖ 0x01 ‖ public key)` (0x01: Ed25519).
//!
//! **Key files** (text, one line each):
//! * public (verifier) key, `archive.pub`: `<name>+<key id, 8 hex>+<base64(0x01 ‖ public key)>`
//! * private (signer) key, `archive.key`, mode 0600:
//!   `PRIVATE+KEY+<name>+<key id, 8 hex>+<base64(0x01 ‖ 32-byte seed)>`
//!
//! Invariants: a private key never appears in `Debug` output or an error; parsing never panics;
//! [`SignedCheckpoint::verify`] accepts only a signature by the given key over exactly the body.

use std::fmt;
use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use rand::TryRngCore;
use sha2::{Digest, Sha256};

use crate::error::ArchiveError;
use crate::merkle::Hash;

/// The signature type byte of Ed25519 in signed notes.
const ALG_ED25519: u8 = 1;
/// File name of the private key in a key directory.
pub const PRIVATE_KEY_FILE: &str = "archive.key";
/// File name of the public key in a key directory.
pub const PUBLIC_KEY_FILE: &str = "archive.pub";
/// The default key name.
pub const DEFAULT_KEY_NAME: &str = "provenant-archive";

fn key_id(name: &str, public: &VerifyingKey) -> u32 {
    let mut h = Sha256::new();
    h.update(name.as_bytes());
    h.update(b"\n");
    h.update([ALG_ED25519]);
    h.update(public.as_bytes());
    let d: [u8; 32] = h.finalize().into();
    let [a, b, c, e, ..] = d;
    u32::from_be_bytes([a, b, c, e])
}

fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty()
        || name.contains('+')
        || name.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(format!(
            "key name {name:?} must be non-empty, without spaces or '+'"
        ));
    }
    Ok(())
}

/// The archive's signing key: a name and an Ed25519 key.
#[derive(Clone)]
pub struct ArchiveKey {
    name: String,
    signing: SigningKey,
}

impl fmt::Debug for ArchiveKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ArchiveKey")
            .field("name", &self.name)
            .field("key_id", &format_args!("{:08x}", self.key_id()))
            .finish_non_exhaustive()
    }
}

impl ArchiveKey {
    /// A key named `name` from an Ed25519 signing key.
    pub fn new(name: &str, signing: SigningKey) -> Result<Self, ArchiveError> {
        check_name(name).map_err(ArchiveError::Config)?;
        Ok(Self {
            name: name.to_owned(),
            signing,
        })
    }

    /// A fresh random key (from the operating system's random source).
    pub fn generate(name: &str) -> Result<Self, ArchiveError> {
        let mut seed = [0u8; 32];
        rand::rngs::OsRng
            .try_fill_bytes(&mut seed)
            .map_err(|e| ArchiveError::Config(format!("no random source for a new key: {e}")))?;
        Self::new(name, SigningKey::from_bytes(&seed))
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn key_id(&self) -> u32 {
        key_id(&self.name, &self.signing.verifying_key())
    }

    /// The public half.
    pub fn verifier(&self) -> VerifierKey {
        VerifierKey {
            name: self.name.clone(),
            id: self.key_id(),
            key: self.signing.verifying_key(),
        }
    }

    /// The private key file's text (one line, with newline).
    pub fn to_private_text(&self) -> String {
        let mut raw = vec![ALG_ED25519];
        raw.extend_from_slice(self.signing.as_bytes());
        format!(
            "PRIVATE+KEY+{}+{:08x}+{}\n",
            self.name,
            self.key_id(),
            B64.encode(raw)
        )
    }

    /// Parses a private key file's text.
    pub fn parse_private(text: &str) -> Result<Self, String> {
        let line = text.trim_end_matches(['\n', '\r']);
        let rest = line
            .strip_prefix("PRIVATE+KEY+")
            .ok_or("not a private key (expected PRIVATE+KEY+<name>+<id>+<key>)")?;
        let (name, id, raw) = split3(rest)?;
        let raw = B64.decode(raw).map_err(|_| "key is not base64")?;
        let seed: [u8; 32] = match raw.split_first() {
            Some((&ALG_ED25519, seed)) => {
                seed.try_into().map_err(|_| "Ed25519 key is not 32 bytes")?
            }
            _ => return Err("not an Ed25519 key".into()),
        };
        let key = Self::new(name, SigningKey::from_bytes(&seed)).map_err(|e| e.to_string())?;
        if format!("{:08x}", key.key_id()) != id {
            return Err("key id does not match the name and key".into());
        }
        Ok(key)
    }

    /// Signs a note body (which must end with a newline): returns the whole note.
    pub fn sign_note(&self, body: &str) -> String {
        let sig = self.signing.sign(body.as_bytes());
        let mut raw = self.key_id().to_be_bytes().to_vec();
        raw.extend_from_slice(&sig.to_bytes());
        format!("{body}\n\u{2014} {} {}\n", self.name, B64.encode(raw))
    }
}

fn split3(s: &str) -> Result<(&str, &str, &str), String> {
    let mut it = s.splitn(3, '+');
    match (it.next(), it.next(), it.next()) {
        (Some(a), Some(b), Some(c)) if b.len() == 8 && b.bytes().all(|x| x.is_ascii_hexdigit()) => {
            Ok((a, b, c))
        }
        _ => Err("expected <name>+<8 hex digit key id>+<base64 key>".into()),
    }
}

/// A public key that checks checkpoint signatures.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifierKey {
    name: String,
    id: u32,
    key: VerifyingKey,
}

impl VerifierKey {
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn key_id(&self) -> u32 {
        self.id
    }

    /// The public key file's text (one line, with newline).
    pub fn to_text(&self) -> String {
        let mut raw = vec![ALG_ED25519];
        raw.extend_from_slice(self.key.as_bytes());
        format!("{}+{:08x}+{}\n", self.name, self.id, B64.encode(raw))
    }

    /// Parses a public key file's text.
    pub fn parse(text: &str) -> Result<Self, String> {
        let line = text.trim();
        if line.starts_with("PRIVATE+KEY+") {
            return Err("this is a private key; give the public key (archive.pub)".into());
        }
        let (name, id, raw) = split3(line)?;
        check_name(name)?;
        let raw = B64.decode(raw).map_err(|_| "key is not base64")?;
        let public: [u8; 32] = match raw.split_first() {
            Some((&ALG_ED25519, k)) => k.try_into().map_err(|_| "Ed25519 key is not 32 bytes")?,
            _ => return Err("not an Ed25519 key".into()),
        };
        let key =
            VerifyingKey::from_bytes(&public).map_err(|_| "not a valid Ed25519 public key")?;
        let computed = key_id(name, &key);
        if format!("{computed:08x}") != id {
            return Err("key id does not match the name and key".into());
        }
        Ok(Self {
            name: name.to_owned(),
            id: computed,
            key,
        })
    }

    /// Reads a public key file.
    pub fn load(path: &Path) -> Result<Self, ArchiveError> {
        let text = std::fs::read_to_string(path).map_err(|e| ArchiveError::Key {
            path: path.to_owned(),
            message: e.to_string(),
        })?;
        Self::parse(&text).map_err(|message| ArchiveError::Key {
            path: path.to_owned(),
            message,
        })
    }
}

/// A fresh key named `name` (not written anywhere).
pub fn generate_key(name: &str) -> Result<ArchiveKey, ArchiveError> {
    ArchiveKey::generate(name)
}

/// Loads the key in `dir` (`archive.key`), or creates one named `name` with its public key
/// (`archive.pub`) if the directory has none. Returns the key and the public key file's path.
/// The private key file is created with mode 0600 and never overwritten.
pub fn load_or_create_key(dir: &Path, name: &str) -> Result<(ArchiveKey, PathBuf), ArchiveError> {
    let private = dir.join(PRIVATE_KEY_FILE);
    let public = dir.join(PUBLIC_KEY_FILE);
    let key_err = |path: &Path, message: String| ArchiveError::Key {
        path: path.to_owned(),
        message,
    };
    let key = match std::fs::read_to_string(&private) {
        Ok(text) => ArchiveKey::parse_private(&text).map_err(|m| key_err(&private, m))?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir_all(dir).map_err(|e| key_err(dir, e.to_string()))?;
            let key = ArchiveKey::generate(name)?;
            write_new(&private, key.to_private_text().as_bytes(), true)
                .map_err(|e| key_err(&private, e.to_string()))?;
            key
        }
        Err(e) => return Err(key_err(&private, e.to_string())),
    };
    let want = key.verifier().to_text();
    match std::fs::read_to_string(&public) {
        Ok(text) if text == want => {}
        Ok(_) => {
            return Err(key_err(
                &public,
                "does not hold the public key of archive.key next to it".into(),
            ));
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            write_new(&public, want.as_bytes(), false)
                .map_err(|e| key_err(&public, e.to_string()))?;
        }
        Err(e) => return Err(key_err(&public, e.to_string())),
    }
    Ok((key, public))
}

fn write_new(path: &Path, bytes: &[u8], private: bool) -> std::io::Result<()> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(if private { 0o600 } else { 0o644 });
    }
    #[cfg(not(unix))]
    let _ = private;
    let mut f = opts.open(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

/// The signed statement of a checkpoint: origin, tree size, root.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checkpoint {
    pub origin: String,
    pub size: u64,
    pub root: Hash,
}

impl Checkpoint {
    /// The note body: three lines, each ending with a newline.
    pub fn body(&self) -> String {
        format!(
            "{}\n{}\n{}\n",
            self.origin,
            self.size,
            B64.encode(self.root)
        )
    }

    /// The signed note.
    pub fn sign(&self, key: &ArchiveKey) -> String {
        key.sign_note(&self.body())
    }
}

/// One signature line of a note.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NoteSignature {
    pub name: String,
    pub key_id: u32,
    pub signature: [u8; 64],
}

/// A parsed checkpoint note with its signature lines (not yet verified).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedCheckpoint {
    pub checkpoint: Checkpoint,
    /// The body exactly as signed.
    pub body: String,
    pub signatures: Vec<NoteSignature>,
}

/// Why a checkpoint note is not acceptable.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CheckpointError {
    #[error("malformed checkpoint: {0}")]
    Malformed(String),
    #[error("no signature by key {name} ({id:08x})")]
    NotSignedBy { name: String, id: u32 },
    #[error("the signature by key {name} ({id:08x}) does not verify")]
    BadSignature { name: String, id: u32 },
}

impl SignedCheckpoint {
    /// Parses a note. Extra body lines after the root (extensions) are allowed and signed.
    pub fn parse(text: &str) -> Result<Self, CheckpointError> {
        let bad = |m: &str| CheckpointError::Malformed(m.to_owned());
        if !text.ends_with('\n') {
            return Err(bad("a note ends with a newline"));
        }
        let split = text
            .find("\n\n")
            .ok_or_else(|| bad("no blank line before the signatures"))?;
        let (body, sigs) = text.split_at(split + 1);
        let sigs = sigs.get(1..).unwrap_or_default();
        let mut lines = body.lines();
        let origin = lines
            .next()
            .filter(|l| !l.is_empty())
            .ok_or_else(|| bad("no origin line"))?;
        let size_line = lines.next().ok_or_else(|| bad("no tree size line"))?;
        if size_line.is_empty()
            || !size_line.bytes().all(|b| b.is_ascii_digit())
            || (size_line.len() > 1 && size_line.starts_with('0'))
        {
            return Err(bad("the tree size is not a decimal number"));
        }
        let size: u64 = size_line
            .parse()
            .map_err(|_| bad("tree size out of range"))?;
        let root_line = lines.next().ok_or_else(|| bad("no root hash line"))?;
        let root: Hash = B64
            .decode(root_line)
            .ok()
            .and_then(|r| r.try_into().ok())
            .ok_or_else(|| bad("the root hash is not 32 bytes of base64"))?;
        let mut signatures = Vec::new();
        for line in sigs.lines() {
            let rest = line
                .strip_prefix("\u{2014} ")
                .ok_or_else(|| bad("a signature line starts with an em dash and a space"))?;
            let (name, b64) = rest
                .split_once(' ')
                .ok_or_else(|| bad("signature line: <name> <base64>"))?;
            let raw = B64
                .decode(b64)
                .map_err(|_| bad("signature is not base64"))?;
            let (id, sig) = raw
                .split_at_checked(4)
                .ok_or_else(|| bad("signature too short"))?;
            let key_id = u32::from_be_bytes(id.try_into().map_err(|_| bad("signature too short"))?);
            // Signatures of other types (other lengths) are kept out: only Ed25519 is checked.
            let Ok(signature) = <[u8; 64]>::try_from(sig) else {
                continue;
            };
            signatures.push(NoteSignature {
                name: name.to_owned(),
                key_id,
                signature,
            });
        }
        if sigs.lines().next().is_none() {
            return Err(bad("no signature line"));
        }
        Ok(Self {
            checkpoint: Checkpoint {
                origin: origin.to_owned(),
                size,
                root,
            },
            body: body.to_owned(),
            signatures,
        })
    }

    /// Checks that `key` signed the body.
    pub fn verify(&self, key: &VerifierKey) -> Result<(), CheckpointError> {
        let mut found = false;
        for s in &self.signatures {
            if s.name != key.name || s.key_id != key.id {
                continue;
            }
            found = true;
            let sig = Signature::from_bytes(&s.signature);
            if key.key.verify(self.body.as_bytes(), &sig).is_ok() {
                return Ok(());
            }
        }
        if found {
            Err(CheckpointError::BadSignature {
                name: key.name.clone(),
                id: key.id,
            })
        } else {
            Err(CheckpointError::NotSignedBy {
                name: key.name.clone(),
                id: key.id,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
    use super::*;

    #[test]
    fn key_files_round_trip_and_ids_match_the_note_format() {
        let key = ArchiveKey::new("example.com/log", SigningKey::from_bytes(&[7; 32])).unwrap();
        let again = ArchiveKey::parse_private(&key.to_private_text()).unwrap();
        assert_eq!(again.verifier(), key.verifier());
        let v = VerifierKey::parse(&key.verifier().to_text()).unwrap();
        assert_eq!(v, key.verifier());
        assert!(key.verifier().to_text().starts_with("example.com/log+"));
        assert!(format!("{key:?}").contains("key_id"));
        assert!(!format!("{key:?}").contains(&B64.encode([7u8; 32])));
        assert!(VerifierKey::parse(&key.to_private_text()).is_err());
        let mut tampered = key.verifier().to_text();
        tampered.replace_range(..7, "another");
        assert!(VerifierKey::parse(&tampered).is_err());
    }

    /// The key id and signature line of a known key, computed as Go's `note` package does
    /// (SHA-256(name ‖ "\n" ‖ 0x01 ‖ pub)[:4]); Ed25519 is deterministic, so the note is fixed.
    #[test]
    fn checkpoint_sign_parse_verify() {
        let key = ArchiveKey::new("provenant-test", SigningKey::from_bytes(&[1; 32])).unwrap();
        let cp = Checkpoint {
            origin: "provenant/test/p3".into(),
            size: 12,
            root: [0xab; 32],
        };
        let text = cp.sign(&key);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "provenant/test/p3");
        assert_eq!(lines[1], "12");
        assert_eq!(lines[3], "");
        assert!(lines[4].starts_with("\u{2014} provenant-test "));
        let parsed = SignedCheckpoint::parse(&text).unwrap();
        assert_eq!(parsed.checkpoint, cp);
        parsed.verify(&key.verifier()).unwrap();

        let other = ArchiveKey::new("provenant-test", SigningKey::from_bytes(&[2; 32])).unwrap();
        assert!(matches!(
            parsed.verify(&other.verifier()),
            Err(CheckpointError::NotSignedBy { .. })
        ));
        // Changing the size without re-signing breaks the signature.
        let forged = text.replacen("\n12\n", "\n13\n", 1);
        let forged = SignedCheckpoint::parse(&forged).unwrap();
        assert!(matches!(
            forged.verify(&key.verifier()),
            Err(CheckpointError::BadSignature { .. })
        ));
        for bad in ["", "a\n1\nAAAA\n\n", "a\n01\n", "a\nx\n\n\u{2014} k AAAA\n"] {
            assert!(SignedCheckpoint::parse(bad).is_err(), "{bad:?}");
        }
    }

    /// The reference key and note of Go's `golang.org/x/mod/sumdb/note` (its documentation and
    /// tests): our key files and signature lines are byte for byte the same.
    #[test]
    fn go_note_reference_vector() {
        let skey = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz";
        let vkey = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW";
        let text = "If you think cryptography is the answer to your problem,\n\
                    then you don't know what your problem is.\n";
        let want = format!(
            "{text}\n\u{2014} PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n"
        );
        let key = ArchiveKey::parse_private(skey).unwrap();
        assert_eq!(key.to_private_text(), format!("{skey}\n"));
        assert_eq!(key.verifier().to_text(), format!("{vkey}\n"));
        assert_eq!(key.sign_note(text), want);
        let v = VerifierKey::parse(vkey).unwrap();
        let sig = SignedCheckpoint::parse(&want);
        // Not a checkpoint (no size line), but the signature line parses the same way:
        assert!(sig.is_err());
        assert_eq!(v.key_id(), 0xc74f_20a3);
    }

    #[test]
    fn load_or_create_key_keeps_the_first_key() {
        let dir = tempfile::tempdir().unwrap();
        let (k1, public) = load_or_create_key(dir.path(), "a").unwrap();
        let (k2, _) = load_or_create_key(dir.path(), "ignored-when-present").unwrap();
        assert_eq!(k1.verifier(), k2.verifier());
        assert_eq!(VerifierKey::load(&public).unwrap(), k1.verifier());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join(PRIVATE_KEY_FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }
}
