//! age encryption of Secret entries: to the spec's recipients on the way in,
//! with the user's identity file on the way out. The files are standard age,
//! so `age -d -i key.txt` opens an extracted entry too.

use std::io::{Read, Write};
use std::path::Path;

/// Recipients parsed from the spec.
pub struct Recipients(Vec<age::x25519::Recipient>);

impl Recipients {
    /// Parses `age1...` strings.
    pub fn parse(list: &[String]) -> Result<Self, String> {
        list.iter()
            .map(|r| {
                r.trim().parse::<age::x25519::Recipient>().map_err(|e| format!("`{r}` is not an age recipient: {e}"))
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Self)
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Encrypts `plain` to every recipient.
    pub fn encrypt(&self, plain: &[u8]) -> Result<Vec<u8>, String> {
        let enc = age::Encryptor::with_recipients(self.0.iter().map(|r| r as &dyn age::Recipient))
            .map_err(|e| e.to_string())?;
        let mut out = Vec::with_capacity(plain.len() + 256);
        let mut w = enc.wrap_output(&mut out).map_err(|e| e.to_string())?;
        w.write_all(plain).map_err(|e| e.to_string())?;
        w.finish().map_err(|e| e.to_string())?;
        Ok(out)
    }
}

/// A new identity: its public key (`age1...`) and its secret line
/// (`AGE-SECRET-KEY-1...`), in age-keygen's file format.
pub fn generate() -> (String, String) {
    use age::secrecy::ExposeSecret;
    let id = age::x25519::Identity::generate();
    (id.to_public().to_string(), id.to_string().expose_secret().to_string())
}

/// Identities that can decrypt (cheap to clone).
#[derive(Clone)]
pub struct Identities(std::sync::Arc<Vec<Box<dyn age::Identity + Send + Sync>>>);

impl Identities {
    /// Reads an age identity file (`AGE-SECRET-KEY-1...` lines).
    pub fn read(path: &Path) -> Result<Self, String> {
        let file = age::IdentityFile::from_file(path.display().to_string())
            .map_err(|e| format!("cannot read the identity file {}: {e}", path.display()))?;
        let ids = file.into_identities().map_err(|e| format!("{}: {e}", path.display()))?;
        if ids.is_empty() {
            return Err(format!("{} holds no age identity", path.display()));
        }
        Ok(Self(std::sync::Arc::new(ids)))
    }

    /// Decrypts one entry.
    pub fn decrypt(&self, cipher: &[u8]) -> Result<Vec<u8>, String> {
        let dec = age::Decryptor::new(cipher).map_err(|e| e.to_string())?;
        let mut r = dec.decrypt(self.0.iter().map(|i| i.as_ref() as &dyn age::Identity)).map_err(|e| e.to_string())?;
        let mut out = Vec::new();
        r.read_to_end(&mut out).map_err(|e| e.to_string())?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use age::secrecy::ExposeSecret;

    #[test]
    fn only_the_right_key_opens_an_entry() {
        let right = age::x25519::Identity::generate();
        let wrong = age::x25519::Identity::generate();
        let dir = tempfile::tempdir().unwrap();
        let write_key = |name: &str, id: &age::x25519::Identity| {
            let p = dir.path().join(name);
            std::fs::write(&p, format!("{}\n", id.to_string().expose_secret())).unwrap();
            p
        };
        let recipients = Recipients::parse(&[right.to_public().to_string()]).unwrap();
        let cipher = recipients.encrypt(b"{\"data\":{\"password\":\"aHVudGVyMg==\"}}").unwrap();
        assert!(!String::from_utf8_lossy(&cipher).contains("aHVudGVyMg"));
        let ok = Identities::read(&write_key("right.txt", &right)).unwrap().decrypt(&cipher).unwrap();
        assert_eq!(ok, b"{\"data\":{\"password\":\"aHVudGVyMg==\"}}");
        let err = Identities::read(&write_key("wrong.txt", &wrong)).unwrap().decrypt(&cipher).unwrap_err();
        assert!(err.contains("No matching keys"), "{err}");
    }

    #[test]
    fn a_bad_recipient_is_named() {
        let err = Recipients::parse(&["age1nope".into()]).err().unwrap();
        assert!(err.starts_with("`age1nope` is not an age recipient"), "{err}");
    }
}
