//! Authentication: the root credentials and the AWS signature schemes that prove
//! a request was made with them. Only this module touches secrets; it never
//! logs them, and every comparison of a signature is constant time (ring's
//! `hmac::verify`).

pub mod chunked;
pub mod sigv2;
pub mod sigv4;

/// Access key length S3 tools accept (MinIO's rule).
pub const ACCESS_KEY_LEN: std::ops::RangeInclusive<usize> = 5..=20;
/// Secret key length S3 tools accept (MinIO's rule).
pub const SECRET_KEY_LEN: std::ops::RangeInclusive<usize> = 8..=40;
/// The pair used when no credentials are configured; start-up warns loudly.
pub const DEV_ACCESS_KEY: &str = "basaltadmin";
pub const DEV_SECRET_KEY: &str = "basaltadmin";

/// The root user's keys.
#[derive(Clone)]
pub struct Credentials {
    pub access_key: String,
    pub secret_key: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the secret, even in debug output.
        f.debug_struct("Credentials").field("access_key", &self.access_key).finish_non_exhaustive()
    }
}

/// Where the credentials came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CredentialSource {
    Environment(&'static str),
    Development,
}

impl Credentials {
    /// Reads the root credentials from `lookup` (the environment): BASALT_ROOT_USER /
    /// BASALT_ROOT_PASSWORD, else MINIO_ROOT_USER / MINIO_ROOT_PASSWORD, else
    /// MINIO_ACCESS_KEY / MINIO_SECRET_KEY; none of them gives the development pair.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<(Credentials, CredentialSource), String> {
        const PAIRS: [(&str, &str); 3] = [
            ("BASALT_ROOT_USER", "BASALT_ROOT_PASSWORD"),
            ("MINIO_ROOT_USER", "MINIO_ROOT_PASSWORD"),
            ("MINIO_ACCESS_KEY", "MINIO_SECRET_KEY"),
        ];
        for (user_var, pass_var) in PAIRS {
            let (user, pass) = (lookup(user_var), lookup(pass_var));
            match (user, pass) {
                (None, None) => continue,
                (Some(_), None) => return Err(format!("{user_var} is set but {pass_var} is not; set both")),
                (None, Some(_)) => return Err(format!("{pass_var} is set but {user_var} is not; set both")),
                (Some(user), Some(pass)) => {
                    if !ACCESS_KEY_LEN.contains(&user.len()) {
                        return Err(format!(
                            "{user_var} must be {} to {} characters long (it is {})",
                            ACCESS_KEY_LEN.start(),
                            ACCESS_KEY_LEN.end(),
                            user.len()
                        ));
                    }
                    if !SECRET_KEY_LEN.contains(&pass.len()) {
                        return Err(format!(
                            "{pass_var} must be {} to {} characters long (it is {})",
                            SECRET_KEY_LEN.start(),
                            SECRET_KEY_LEN.end(),
                            pass.len()
                        ));
                    }
                    return Ok((
                        Credentials { access_key: user, secret_key: pass },
                        CredentialSource::Environment(user_var),
                    ));
                }
            }
        }
        Ok((
            Credentials { access_key: DEV_ACCESS_KEY.into(), secret_key: DEV_SECRET_KEY.into() },
            CredentialSource::Development,
        ))
    }
}

pub use crate::hex::{decode as unhex, encode as hex};

pub fn sha256_hex(data: &[u8]) -> String {
    hex(ring::digest::digest(&ring::digest::SHA256, data).as_ref())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: std::collections::HashMap<String, String> =
            pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn credential_sources_and_limits() {
        let (c, s) = Credentials::from_lookup(env(&[])).unwrap();
        assert_eq!((c.access_key.as_str(), s), (DEV_ACCESS_KEY, CredentialSource::Development));
        let (c, _) =
            Credentials::from_lookup(env(&[("MINIO_ROOT_USER", "admin"), ("MINIO_ROOT_PASSWORD", "password1")]))
                .unwrap();
        assert_eq!(c.access_key, "admin");
        let (c, s) = Credentials::from_lookup(env(&[
            ("BASALT_ROOT_USER", "basalt"),
            ("BASALT_ROOT_PASSWORD", "secret123"),
            ("MINIO_ACCESS_KEY", "other"),
            ("MINIO_SECRET_KEY", "othersecret"),
        ]))
        .unwrap();
        assert_eq!((c.access_key.as_str(), s), ("basalt", CredentialSource::Environment("BASALT_ROOT_USER")));
        let err = Credentials::from_lookup(env(&[("BASALT_ROOT_USER", "abcd"), ("BASALT_ROOT_PASSWORD", "secret123")]))
            .unwrap_err();
        assert!(err.contains("5 to 20"), "{err}");
        let err = Credentials::from_lookup(env(&[("BASALT_ROOT_USER", "abcde"), ("BASALT_ROOT_PASSWORD", "short")]))
            .unwrap_err();
        assert!(err.contains("8 to 40"), "{err}");
        assert!(Credentials::from_lookup(env(&[("MINIO_ROOT_USER", "abcde")])).is_err());
        assert!(!format!("{c:?}").contains("secret123"));
    }
}
