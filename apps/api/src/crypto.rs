//! `SecretCipher` on AES-256-GCM (RustCrypto's `aes-gcm`): a random 96-bit nonce per secret,
//! stored with the ciphertext; the key id is a hash of the key, so it names the key without
//! revealing it.

use aes_gcm::aead::{Aead, AeadCore, KeyInit, OsRng};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use base64::Engine;
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use tributary_domain::model::secret::SealedSecret;
use tributary_domain::ports::{CipherError, SecretCipher};

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

struct MasterKey {
    id: String,
    cipher: Aes256Gcm,
    derived_base: [u8; 32],
}

impl MasterKey {
    fn new(bytes: &[u8; 32]) -> Self {
        let digest = Sha256::digest([b"tributary-master-key-id:".as_slice(), bytes.as_slice()].concat());
        let base = Sha256::digest([b"tributary-derived-keys:".as_slice(), bytes.as_slice()].concat());
        Self { id: hex::encode(&digest[..8]), cipher: Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(bytes)), derived_base: base.into() }
    }
}

/// Seals under the current master key; opens with any configured key.
pub struct AesGcmCipher {
    current: MasterKey,
    previous: Vec<MasterKey>,
}

impl AesGcmCipher {
    /// A cipher that seals under `current` and also opens secrets sealed under `previous`.
    pub fn new(current: &[u8; 32], previous: &[[u8; 32]]) -> Self {
        Self { current: MasterKey::new(current), previous: previous.iter().map(MasterKey::new).collect() }
    }

    /// A key for another purpose (signing OAuth states), derived one-way from the current master
    /// key and a label, so it changes when the master key rotates.
    pub fn derive_key(&self, label: &str) -> [u8; 32] {
        Sha256::digest([self.current.derived_base.as_slice(), label.as_bytes()].concat()).into()
    }

    /// A fresh random 32-byte key, base64-encoded.
    pub fn generate_key() -> String {
        B64.encode(Aes256Gcm::generate_key(&mut OsRng))
    }
}

impl SecretCipher for AesGcmCipher {
    fn current_key_id(&self) -> String {
        self.current.id.clone()
    }

    fn seal(&self, plaintext: &SecretString) -> Result<SealedSecret, CipherError> {
        let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
        let ct = self.current.cipher.encrypt(&nonce, plaintext.expose_secret().as_bytes()).map_err(|_| CipherError::Corrupt)?;
        let mut blob = nonce.to_vec();
        blob.extend_from_slice(&ct);
        Ok(SealedSecret { key_id: self.current.id.clone(), ciphertext: B64.encode(blob) })
    }

    fn open(&self, sealed: &SealedSecret) -> Result<SecretString, CipherError> {
        let key = std::iter::once(&self.current)
            .chain(self.previous.iter())
            .find(|k| k.id == sealed.key_id)
            .ok_or_else(|| CipherError::UnknownKey(sealed.key_id.clone()))?;
        let blob = B64.decode(&sealed.ciphertext).map_err(|_| CipherError::Corrupt)?;
        if blob.len() < 12 {
            return Err(CipherError::Corrupt);
        }
        let (nonce, ct) = blob.split_at(12);
        let plain = key.cipher.decrypt(Nonce::from_slice(nonce), ct).map_err(|_| CipherError::Corrupt)?;
        String::from_utf8(plain).map(SecretString::from).map_err(|_| CipherError::Corrupt)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_secrets_do_not_contain_the_plaintext_and_open_back() {
        let c = AesGcmCipher::new(&[7; 32], &[]);
        let s = c.seal(&SecretString::from("sk_test_supersecret")).unwrap();
        assert!(!s.ciphertext.contains("sk_test"));
        assert_eq!(c.open(&s).unwrap().expose_secret(), "sk_test_supersecret");
        let again = c.seal(&SecretString::from("sk_test_supersecret")).unwrap();
        assert_ne!(s.ciphertext, again.ciphertext, "a fresh nonce per seal");
    }

    #[test]
    fn previous_keys_open_old_secrets_and_unknown_keys_are_named() {
        let old = AesGcmCipher::new(&[1; 32], &[]);
        let sealed = old.seal(&SecretString::from("x")).unwrap();
        let rotated = AesGcmCipher::new(&[2; 32], &[[1; 32]]);
        assert_eq!(rotated.open(&sealed).unwrap().expose_secret(), "x");
        let other = AesGcmCipher::new(&[3; 32], &[]);
        assert_eq!(other.open(&sealed).unwrap_err(), CipherError::UnknownKey(sealed.key_id.clone()));
    }

    #[test]
    fn tampered_ciphertext_is_rejected() {
        let c = AesGcmCipher::new(&[7; 32], &[]);
        let mut s = c.seal(&SecretString::from("secret")).unwrap();
        let mut blob = B64.decode(&s.ciphertext).unwrap();
        let last = blob.len() - 1;
        blob[last] ^= 1;
        s.ciphertext = B64.encode(blob);
        assert_eq!(c.open(&s).unwrap_err(), CipherError::Corrupt);
    }
}
