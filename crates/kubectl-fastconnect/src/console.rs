//! Console Connect through the operator's own client, with the key from the user's Secret.

use fastconnect_operator::consoleconnect::{self as cc, ApiKey, ClientConfig, Metro, Port};

use crate::{cli::ApiArgs, cluster::Cluster, error::Error};

/// The two lists the commands read, with a key and the words to explain a refusal.
pub struct Console {
    client: cc::Client,
    key: ApiKey,
    /// `namespace/name` of the key's Secret, for messages.
    secret: String,
}

impl Console {
    /// Reads the key from the Secret the flags name and sets up the client.
    pub async fn connect(cluster: &Cluster, api: &ApiArgs) -> Result<Console, Error> {
        let key = cluster.api_key(&api.secret, &api.key).await?;
        let config = ClientConfig {
            base_url: api.api_url.clone(),
            // A command makes two calls at most: the operator's pacing would only slow it.
            rate_limit: None,
            ..ClientConfig::default()
        };
        Ok(Console {
            client: cc::Client::new(config).map_err(Error::ApiClient)?,
            key,
            secret: format!("{}/{}", cluster.namespace, api.secret),
        })
    }

    pub async fn ports(&self, company: &str) -> Result<Vec<Port>, Error> {
        self.client
            .list_ports(&self.key, company)
            .await
            .map_err(|source| self.failed("listing the ports", Some(company), source))
    }

    pub async fn metros(&self) -> Result<Vec<Metro>, Error> {
        self.client
            .oracle_metros(&self.key)
            .await
            .map_err(|source| self.failed("listing Oracle's metros", None, source))
    }

    fn failed(&self, call: &'static str, company: Option<&str>, source: cc::Error) -> Error {
        Error::ConsoleConnect {
            call,
            url: self.client.base_url().to_string(),
            hint: hint(&source, &self.secret, company),
            source,
        }
    }
}

/// What to do about a failed call, as flags to change; empty when there is nothing to add.
fn hint(error: &cc::Error, secret: &str, company: Option<&str>) -> String {
    match (error, company) {
        (cc::Error::Unauthorized { .. }, Some(company)) => format!(
            "; check the key in Secret {secret} (--secret, --key) and that it belongs to \
             company {company} (--company)"
        ),
        (cc::Error::Unauthorized { .. }, None) => {
            format!("; check the key in Secret {secret} (--secret, --key)")
        }
        (cc::Error::NotFound { .. }, Some(company)) => {
            format!("; check that {company} is your company username (--company)")
        }
        (cc::Error::Transport { .. } | cc::Error::Timeout { .. }, _) => {
            "; check --api-url and that this machine reaches it".to_owned()
        }
        (cc::Error::Throttled { .. } | cc::Error::Server { .. }, _) => {
            "; try again in a moment".to_owned()
        }
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_key_points_at_the_flags_that_name_it() {
        let refused = cc::Error::Unauthorized {
            status: 401,
            message: "bad key".into(),
        };
        let text = hint(&refused, "net/cc", Some("acme"));
        assert!(text.contains("Secret net/cc (--secret, --key)"), "{text}");
        assert!(text.contains("company acme (--company)"), "{text}");
        let missing = cc::Error::NotFound {
            message: "x".into(),
        };
        assert!(hint(&missing, "net/cc", None).is_empty());
    }
}
