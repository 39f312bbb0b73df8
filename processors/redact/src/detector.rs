//! The detectors: their stable names (used in [`provenant_schemas::ledger::Redaction`] and
//! as metric label values), their masks and their precedence.
//!
//! Invariant: a detector's name, mask and position in [`DETECTORS`] never change once
//! released (ledgers and dashboards refer to them); new detectors are appended.

/// Every detector name, in a fixed order. Metrics use these as label values, so a label
/// value always comes from this fixed set, never from an event (see [`crate::metric_label`]).
pub const DETECTORS: &[&str] = &[
    "email",
    "phone",
    "ipv4",
    "ipv6",
    "payment_card",
    "iban",
    "us_ssn",
    "jwt",
    "aws_access_key",
    "aws_secret_key",
    "gcp_api_key",
    "azure_storage_key",
    "azure_sas_token",
    "github_token",
    "gitlab_token",
    "slack_token",
    "private_key",
    "url_credentials",
    "secret_key_entropy",
];

/// One detector. The declaration order is the **precedence** when two findings overlap: the
/// merged span is reported under the detector declared first (the most specific one).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Detector {
    PrivateKey,
    Jwt,
    AwsAccessKey,
    AwsSecretKey,
    GcpApiKey,
    AzureStorageKey,
    AzureSasToken,
    GithubToken,
    GitlabToken,
    SlackToken,
    UrlCredentials,
    PaymentCard,
    Iban,
    UsSsn,
    Email,
    Phone,
    Ipv6,
    Ipv4,
    SecretKeyEntropy,
}

impl Detector {
    /// Every detector, in [`DETECTORS`] order.
    pub const ALL: [Detector; 19] = [
        Detector::Email,
        Detector::Phone,
        Detector::Ipv4,
        Detector::Ipv6,
        Detector::PaymentCard,
        Detector::Iban,
        Detector::UsSsn,
        Detector::Jwt,
        Detector::AwsAccessKey,
        Detector::AwsSecretKey,
        Detector::GcpApiKey,
        Detector::AzureStorageKey,
        Detector::AzureSasToken,
        Detector::GithubToken,
        Detector::GitlabToken,
        Detector::SlackToken,
        Detector::PrivateKey,
        Detector::UrlCredentials,
        Detector::SecretKeyEntropy,
    ];

    /// The stable snake_case name (an entry of [`DETECTORS`]).
    pub fn name(self) -> &'static str {
        match self {
            Detector::Email => "email",
            Detector::Phone => "phone",
            Detector::Ipv4 => "ipv4",
            Detector::Ipv6 => "ipv6",
            Detector::PaymentCard => "payment_card",
            Detector::Iban => "iban",
            Detector::UsSsn => "us_ssn",
            Detector::Jwt => "jwt",
            Detector::AwsAccessKey => "aws_access_key",
            Detector::AwsSecretKey => "aws_secret_key",
            Detector::GcpApiKey => "gcp_api_key",
            Detector::AzureStorageKey => "azure_storage_key",
            Detector::AzureSasToken => "azure_sas_token",
            Detector::GithubToken => "github_token",
            Detector::GitlabToken => "gitlab_token",
            Detector::SlackToken => "slack_token",
            Detector::PrivateKey => "private_key",
            Detector::UrlCredentials => "url_credentials",
            Detector::SecretKeyEntropy => "secret_key_entropy",
        }
    }

    /// The mask that replaces a span this detector found: `[REDACTED:<name>]`.
    pub fn mask(self) -> &'static str {
        match self {
            Detector::Email => "[REDACTED:email]",
            Detector::Phone => "[REDACTED:phone]",
            Detector::Ipv4 => "[REDACTED:ipv4]",
            Detector::Ipv6 => "[REDACTED:ipv6]",
            Detector::PaymentCard => "[REDACTED:payment_card]",
            Detector::Iban => "[REDACTED:iban]",
            Detector::UsSsn => "[REDACTED:us_ssn]",
            Detector::Jwt => "[REDACTED:jwt]",
            Detector::AwsAccessKey => "[REDACTED:aws_access_key]",
            Detector::AwsSecretKey => "[REDACTED:aws_secret_key]",
            Detector::GcpApiKey => "[REDACTED:gcp_api_key]",
            Detector::AzureStorageKey => "[REDACTED:azure_storage_key]",
            Detector::AzureSasToken => "[REDACTED:azure_sas_token]",
            Detector::GithubToken => "[REDACTED:github_token]",
            Detector::GitlabToken => "[REDACTED:gitlab_token]",
            Detector::SlackToken => "[REDACTED:slack_token]",
            Detector::PrivateKey => "[REDACTED:private_key]",
            Detector::UrlCredentials => "[REDACTED:url_credentials]",
            Detector::SecretKeyEntropy => "[REDACTED:secret_key_entropy]",
        }
    }

    /// The detector named `name`.
    pub fn parse(name: &str) -> Option<Detector> {
        Detector::ALL.into_iter().find(|d| d.name() == name)
    }

    /// Index into [`Detector::ALL`] / [`DETECTORS`].
    pub(crate) fn index(self) -> usize {
        Detector::ALL
            .iter()
            .position(|d| *d == self)
            .unwrap_or_default()
    }
}

impl std::fmt::Display for Detector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The metric label value for a [`provenant_schemas::ledger::Redaction::detector`]: the
/// detector's own name when it is one of [`DETECTORS`], `"policy"` for every field rule
/// (`policy:<rule>`), and `"other"` for anything else. Always one of a fixed set of
/// strings, whatever the input.
pub fn metric_label(detector: &str) -> &'static str {
    if detector.starts_with("policy:") {
        return "policy";
    }
    DETECTORS
        .iter()
        .copied()
        .find(|d| *d == detector)
        .unwrap_or("other")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_masks_and_list_agree() {
        assert_eq!(Detector::ALL.len(), DETECTORS.len());
        for (d, name) in Detector::ALL.iter().zip(DETECTORS) {
            assert_eq!(d.name(), *name);
            assert_eq!(d.mask(), format!("[REDACTED:{name}]"));
            assert_eq!(Detector::parse(name), Some(*d));
            assert_eq!(metric_label(name), *name);
            assert_eq!(DETECTORS[d.index()], *name);
        }
        assert_eq!(metric_label("policy:actor"), "policy");
        assert_eq!(metric_label("alice@example.com"), "other");
    }
}
