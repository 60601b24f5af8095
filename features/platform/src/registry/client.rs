//! An HTTP client for any Confluent-compatible schema registry.
//!
//! Tested against eddy's own server and, through the interop tests, used
//! side by side with confluent-kafka's client. Karapace, Redpanda and
//! Apicurio (ccompat API, `/apis/ccompat/v7`) speak the same API; give their
//! base URL. Basic auth comes from the URL's user info
//! (`https://key:secret@host`) or from [`HttpRegistry::with_basic_auth`].

use std::time::Duration;

use base64::Engine as _;
use serde::Deserialize;
use serde_json::json;

use super::{ErrorBody, RegisteredSchema, RegistryError, SchemaRegistry};

/// A client for one registry.
pub struct HttpRegistry {
    base: String,
    agent: ureq::Agent,
    authorization: Option<String>,
}

impl HttpRegistry {
    /// A client for the registry at `url`, with a 10 s timeout per request.
    pub fn new(url: &str) -> Result<Self, RegistryError> {
        let (base, auth) = split_user_info(url);
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(RegistryError::Unreachable {
                url: base,
                detail: "the registry URL must start with http:// or https://".into(),
            });
        }
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(Duration::from_secs(10)))
            .http_status_as_error(false)
            .build()
            .into();
        let mut client = HttpRegistry {
            base: base.trim_end_matches('/').to_string(),
            agent,
            authorization: None,
        };
        if let Some((user, password)) = auth {
            client = client.with_basic_auth(&user, &password);
        }
        Ok(client)
    }

    /// Sends HTTP basic auth with every request.
    pub fn with_basic_auth(mut self, user: &str, password: &str) -> Self {
        let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        self.authorization = Some(format!("Basic {token}"));
        self
    }

    /// The registry's base URL (without credentials).
    pub fn url(&self) -> &str {
        &self.base
    }

    fn call<T: for<'de> Deserialize<'de>>(
        &self,
        method: &str,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> Result<T, RegistryError> {
        let url = format!("{}{path}", self.base);
        let unreachable = |e: ureq::Error| RegistryError::Unreachable {
            url: self.base.clone(),
            detail: e.to_string(),
        };
        let mut response = match (method, body) {
            ("GET", _) => {
                let mut req = self
                    .agent
                    .get(&url)
                    .header("Accept", "application/vnd.schemaregistry.v1+json");
                if let Some(a) = &self.authorization {
                    req = req.header("Authorization", a);
                }
                req.call().map_err(unreachable)?
            }
            (_, body) => {
                let mut req = self
                    .agent
                    .post(&url)
                    .header("Content-Type", "application/vnd.schemaregistry.v1+json")
                    .header("Accept", "application/vnd.schemaregistry.v1+json");
                if let Some(a) = &self.authorization {
                    req = req.header("Authorization", a);
                }
                req.send(body.unwrap_or(json!({})).to_string())
                    .map_err(unreachable)?
            }
        };
        let status = response.status().as_u16();
        let text = response.body_mut().read_to_string().map_err(unreachable)?;
        if status >= 400 {
            return Err(match serde_json::from_str::<ErrorBody>(&text) {
                Ok(b) => RegistryError::from_api(status, b.error_code, b.message),
                Err(_) => RegistryError::Api {
                    status,
                    code: u32::from(status),
                    message: text,
                },
            });
        }
        serde_json::from_str(&text).map_err(|e| RegistryError::Api {
            status,
            code: 50005,
            message: format!("unexpected response from {url}: {e}: {text}"),
        })
    }
}

/// Splits `http://user:pass@host/...` into the URL without credentials and
/// the credentials.
fn split_user_info(url: &str) -> (String, Option<(String, String)>) {
    let Some((scheme, rest)) = url.split_once("://") else {
        return (url.to_string(), None);
    };
    let (authority, path) = rest.split_once('/').map_or((rest, ""), |(a, p)| (a, p));
    match authority.rsplit_once('@') {
        Some((info, host)) => {
            let (user, pass) = info.split_once(':').unwrap_or((info, ""));
            let sep = if path.is_empty() { "" } else { "/" };
            (
                format!("{scheme}://{host}{sep}{path}"),
                Some((percent_decode(user), percent_decode(pass))),
            )
        }
        None => (url.to_string(), None),
    }
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Some(b) = std::str::from_utf8(&bytes[i + 1..i + 3])
                .ok()
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(b);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Percent-encodes a path segment (subject names may contain anything).
pub(crate) fn encode_segment(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[derive(Deserialize)]
struct IdOnly {
    id: u32,
}

#[derive(Deserialize)]
struct SchemaOnly {
    schema: String,
}

impl SchemaRegistry for HttpRegistry {
    fn register(&self, subject: &str, schema: &str) -> Result<u32, RegistryError> {
        let r: IdOnly = self.call(
            "POST",
            &format!("/subjects/{}/versions", encode_segment(subject)),
            Some(json!({"schema": schema})),
        )?;
        Ok(r.id)
    }

    fn schema_by_id(&self, id: u32) -> Result<String, RegistryError> {
        let r: SchemaOnly = self.call("GET", &format!("/schemas/ids/{id}"), None)?;
        Ok(r.schema)
    }

    fn latest(&self, subject: &str) -> Result<RegisteredSchema, RegistryError> {
        self.call(
            "GET",
            &format!("/subjects/{}/versions/latest", encode_segment(subject)),
            None,
        )
    }

    fn subjects(&self) -> Result<Vec<String>, RegistryError> {
        self.call("GET", "/subjects", None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_info_is_taken_out_of_the_url() {
        let (url, auth) =
            split_user_info("https://key:s%40cret@registry.example:8081/apis/ccompat/v7");
        assert_eq!(url, "https://registry.example:8081/apis/ccompat/v7");
        assert_eq!(auth, Some(("key".to_string(), "s@cret".to_string())));
        assert_eq!(
            split_user_info("http://localhost:8081"),
            ("http://localhost:8081".to_string(), None)
        );
    }

    #[test]
    fn subjects_are_encoded_as_one_path_segment() {
        assert_eq!(encode_segment("a/b c-value"), "a%2Fb%20c-value");
    }
}
