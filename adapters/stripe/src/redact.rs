//! Scrubbing of secrets from text that goes into errors and logs: Stripe echoes authorization
//! codes and refresh tokens back in its error descriptions, and a key may appear anywhere.

/// Prefixes of Stripe values that must never reach an error message or a log line. Longer
/// prefixes come first so that the mode (`sk_test_`, `sk_live_`) is kept for diagnosis.
const SECRET_PREFIXES: [&str; 12] =
    ["sk_test_", "sk_live_", "rk_test_", "rk_live_", "sk_", "rk_", "rt_", "ac_", "whsec_", "ak_", "at_", "ek_"];

/// The longest message kept from a provider.
const MAX_CHARS: usize = 300;

/// Replaces every exact occurrence of `secrets` (empty strings ignored), then every word that looks
/// like a Stripe secret (`sk_…`, `rk_…`, `rt_…`, `ac_…`, `whsec_…`), with `[redacted]`, and cuts the
/// result to a reasonable length.
pub(crate) fn redact(text: &str, secrets: &[&str]) -> String {
    let mut s = text.to_owned();
    for secret in secrets.iter().filter(|x| !x.is_empty()) {
        s = s.replace(secret, "[redacted]");
    }
    let mut out = String::with_capacity(s.len());
    let mut word = String::new();
    let flush = |word: &mut String, out: &mut String| {
        match SECRET_PREFIXES.iter().find(|p| word.starts_with(**p) && word.len() > p.len()) {
            Some(p) => {
                out.push_str(p);
                out.push_str("[redacted]");
            }
            None => out.push_str(word),
        }
        word.clear();
    };
    for c in s.chars() {
        if c.is_ascii_alphanumeric() || c == '_' {
            word.push(c);
        } else {
            flush(&mut word, &mut out);
            out.push(c);
        }
    }
    flush(&mut word, &mut out);
    if out.chars().count() > MAX_CHARS {
        out = out.chars().take(MAX_CHARS).collect::<String>() + "…";
    }
    out
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn exact_secrets_and_secret_shaped_words_are_removed() {
        let r = redact("Authorization code has already been used: ac_ABC123", &[]);
        assert_eq!(r, "Authorization code has already been used: ac_[redacted]");
        let r = redact("Invalid API key provided: sk_test_abcdef; rt_xyz, whsec_1", &[]);
        assert_eq!(r, "Invalid API key provided: sk_test_[redacted]; rt_[redacted], whsec_[redacted]");
        let r = redact("token hunter2 was refused", &["hunter2"]);
        assert_eq!(r, "token [redacted] was refused");
        assert_eq!(
            redact("This application is not connected to stripe account acct_1", &[]),
            "This application is not connected to stripe account acct_1"
        );
        assert_eq!(redact("grant_type sk_ alone", &[]), "grant_type sk_ alone");
        assert!(redact(&"x".repeat(1000), &[]).chars().count() <= 301);
    }
}
