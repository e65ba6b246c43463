//! Amazon SNS message signatures (how SES delivers its notifications).
//!
//! Every SNS message is signed with RSA (SignatureVersion 1: SHA1withRSA,
//! 2: SHA256withRSA) over a canonical string of its fields; the signing
//! certificate is fetched from `SigningCertURL`, which must be an
//! `https://sns.<region>.amazonaws.com/….pem` URL (otherwise anyone could
//! sign with a certificate of their own). Certificates are cached per URL
//! for the life of the process.

use rsa::pkcs8::DecodePublicKey;
use rsa::signature::Verifier;
use rsa::RsaPublicKey;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SnsError {
    #[error("SNS message lacks the field {0}")]
    Missing(&'static str),
    #[error("unknown SNS message Type {0:?}")]
    UnknownType(String),
    #[error("unsupported SignatureVersion {0:?}")]
    Version(String),
    #[error("SigningCertURL {0:?} is not an https SNS host")]
    CertUrl(String),
    #[error("cannot fetch the signing certificate: {0}")]
    Fetch(String),
    #[error("the signing certificate is unusable: {0}")]
    Cert(String),
    #[error("the SNS signature does not verify")]
    Signature,
}

/// The kinds of SNS messages an HTTPS subscriber receives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SnsType {
    Notification,
    SubscriptionConfirmation,
    UnsubscribeConfirmation,
}

fn field<'a>(v: &'a Value, name: &'static str) -> Result<&'a str, SnsError> {
    v.get(name)
        .and_then(Value::as_str)
        .ok_or(SnsError::Missing(name))
}

pub fn message_type(v: &Value) -> Result<SnsType, SnsError> {
    match field(v, "Type")? {
        "Notification" => Ok(SnsType::Notification),
        "SubscriptionConfirmation" => Ok(SnsType::SubscriptionConfirmation),
        "UnsubscribeConfirmation" => Ok(SnsType::UnsubscribeConfirmation),
        other => Err(SnsError::UnknownType(other.to_string())),
    }
}

/// The canonical string SNS signs: `name\nvalue\n` for each signed field,
/// in this order (`Subject` only when present).
pub fn string_to_sign(v: &Value) -> Result<String, SnsError> {
    let names: &[&'static str] = match message_type(v)? {
        SnsType::Notification => &[
            "Message",
            "MessageId",
            "Subject",
            "Timestamp",
            "TopicArn",
            "Type",
        ],
        SnsType::SubscriptionConfirmation | SnsType::UnsubscribeConfirmation => &[
            "Message",
            "MessageId",
            "SubscribeURL",
            "Timestamp",
            "Token",
            "TopicArn",
            "Type",
        ],
    };
    let mut s = String::new();
    for &name in names {
        match (name, v.get(name).and_then(Value::as_str)) {
            ("Subject", None) => {}
            (_, None) => return Err(SnsError::Missing(name)),
            (_, Some(value)) => {
                s.push_str(name);
                s.push('\n');
                s.push_str(value);
                s.push('\n');
            }
        }
    }
    Ok(s)
}

/// Checks `SigningCertURL`: https, an `sns.<region>.amazonaws.com` host
/// (or `.amazonaws.com.cn`), a `.pem` path. When `base_override` is set
/// (tests only), the URL must start with it instead.
pub fn cert_url_allowed(url: &str, base_override: &str) -> Result<url::Url, SnsError> {
    let bad = || SnsError::CertUrl(url.to_string());
    let parsed = url::Url::parse(url).map_err(|_| bad())?;
    if !base_override.is_empty() {
        return if url.starts_with(base_override) {
            Ok(parsed)
        } else {
            Err(bad())
        };
    }
    let host = parsed.host_str().unwrap_or("");
    let region_ok = |h: &str| {
        h.strip_prefix("sns.").is_some_and(|r| {
            !r.is_empty()
                && r.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        })
    };
    let host_ok = host
        .strip_suffix(".amazonaws.com")
        .or_else(|| host.strip_suffix(".amazonaws.com.cn"))
        .is_some_and(region_ok);
    if parsed.scheme() == "https"
        && host_ok
        && parsed.port().is_none()
        && parsed.path().ends_with(".pem")
        && parsed.username().is_empty()
    {
        Ok(parsed)
    } else {
        Err(bad())
    }
}

/// The RSA public key of a PEM X.509 certificate.
pub fn public_key_from_pem(pem: &[u8]) -> Result<RsaPublicKey, SnsError> {
    use x509_cert::der::{DecodePem, Encode};
    let cert = x509_cert::Certificate::from_pem(pem).map_err(|e| SnsError::Cert(e.to_string()))?;
    let spki = cert
        .tbs_certificate
        .subject_public_key_info
        .to_der()
        .map_err(|e| SnsError::Cert(e.to_string()))?;
    RsaPublicKey::from_public_key_der(&spki).map_err(|e| SnsError::Cert(e.to_string()))
}

/// Verifies the message's signature with a known key.
pub fn verify_with_key(v: &Value, key: &RsaPublicKey) -> Result<(), SnsError> {
    use base64::Engine;
    let text = string_to_sign(v)?;
    let sig = base64::engine::general_purpose::STANDARD
        .decode(field(v, "Signature")?)
        .map_err(|_| SnsError::Signature)?;
    let sig =
        rsa::pkcs1v15::Signature::try_from(sig.as_slice()).map_err(|_| SnsError::Signature)?;
    let ok = match field(v, "SignatureVersion")? {
        "1" => rsa::pkcs1v15::VerifyingKey::<sha1::Sha1>::new(key.clone())
            .verify(text.as_bytes(), &sig)
            .is_ok(),
        "2" => rsa::pkcs1v15::VerifyingKey::<sha2::Sha256>::new(key.clone())
            .verify(text.as_bytes(), &sig)
            .is_ok(),
        other => return Err(SnsError::Version(other.to_string())),
    };
    if ok {
        Ok(())
    } else {
        Err(SnsError::Signature)
    }
}

fn cache() -> &'static Mutex<HashMap<String, RsaPublicKey>> {
    static CERTS: OnceLock<Mutex<HashMap<String, RsaPublicKey>>> = OnceLock::new();
    CERTS.get_or_init(|| Mutex::new(HashMap::new()))
}

/// Verifies an SNS message: checks the certificate URL, fetches the
/// certificate (cached per URL), checks the signature.
pub async fn verify(v: &Value, base_override: &str) -> Result<(), SnsError> {
    let url = cert_url_allowed(field(v, "SigningCertURL")?, base_override)?;
    let cached = cache()
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get(url.as_str())
        .cloned();
    let key = match cached {
        Some(k) => k,
        None => {
            let key = public_key_from_pem(&fetch(&url).await?)?;
            cache()
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(url.to_string(), key.clone());
            key
        }
    };
    verify_with_key(v, &key)
}

async fn fetch(url: &url::Url) -> Result<Vec<u8>, SnsError> {
    let fetch_err = |e: reqwest::Error| SnsError::Fetch(e.to_string());
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(fetch_err)?;
    let resp = client
        .get(url.clone())
        .send()
        .await
        .map_err(fetch_err)?
        .error_for_status()
        .map_err(fetch_err)?;
    let body = resp.bytes().await.map_err(fetch_err)?;
    if body.len() > 64 * 1024 {
        return Err(SnsError::Fetch("certificate larger than 64 KiB".into()));
    }
    Ok(body.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_https_sns_hosts_may_serve_signing_certificates() {
        let ok = "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-abc.pem";
        assert!(cert_url_allowed(ok, "").is_ok());
        assert!(cert_url_allowed("https://sns.cn-north-1.amazonaws.com.cn/x.pem", "").is_ok());
        for bad in [
            "http://sns.us-east-1.amazonaws.com/x.pem",
            "https://sns.us-east-1.amazonaws.com.evil.test/x.pem",
            "https://evil.test/sns.us-east-1.amazonaws.com/x.pem",
            "https://s3.amazonaws.com/x.pem",
            "https://sns.us-east-1.amazonaws.com/x.txt",
            "https://sns.us-east-1.amazonaws.com:8443/x.pem",
            "https://a@sns.us-east-1.amazonaws.com/x.pem",
            "not a url",
        ] {
            assert!(cert_url_allowed(bad, "").is_err(), "{bad}");
        }
        assert!(cert_url_allowed("http://127.0.0.1:9/cert.pem", "http://127.0.0.1:9/").is_ok());
        assert!(cert_url_allowed(ok, "http://127.0.0.1:9/").is_err());
    }

    #[test]
    fn the_string_to_sign_lists_the_fields_in_order() {
        let v = serde_json::json!({
            "Type": "Notification", "MessageId": "m", "TopicArn": "t",
            "Message": "hello", "Timestamp": "ts", "SignatureVersion": "1",
        });
        assert_eq!(
            string_to_sign(&v).unwrap(),
            "Message\nhello\nMessageId\nm\nTimestamp\nts\nTopicArn\nt\nType\nNotification\n"
        );
        let no_arn = serde_json::json!({"Type": "Notification", "MessageId": "m", "Message": "x", "Timestamp": "t"});
        assert_eq!(string_to_sign(&no_arn), Err(SnsError::Missing("TopicArn")));
    }
}
