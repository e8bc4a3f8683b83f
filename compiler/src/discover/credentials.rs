//! Registry credentials where keelson runs (a laptop, CI), found the way
//! container tools find them, never written anywhere.
//!
//! The estate's references name secrets in the cluster (`pullsecret:`,
//! `secret:`), an environment variable of the Image Updater pod (`env:`) or a
//! script in it (`ext:`). keelson cannot read the cluster, so per registry:
//! 1. `env:VAR` — when VAR is set here too, as `user:password` (Image
//!    Updater's format);
//! 2. Docker's `config.json` (`$DOCKER_CONFIG`, else `~/.docker`), with its
//!    credential helpers — what `docker login` wrote;
//! 3. anonymous.

use std::collections::HashMap;

use crate::model::{CredentialRef, Estate, RegistryId};

/// Credentials for one registry, and where they came from (for messages;
/// never the value).
#[derive(Clone)]
pub struct Credential {
    pub secret: Secret,
    pub origin: String,
}

#[derive(Clone)]
pub enum Secret {
    Basic {
        user: String,
        password: String,
    },
    /// A Docker `identitytoken`: an OAuth2 refresh token, exchanged at the
    /// registry's token realm.
    IdentityToken(String),
}

// Credentials never reach logs or messages through Debug.
impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Credential(from {})", self.origin)
    }
}

impl Credential {
    /// The `Authorization: Basic …` header, for user and password credentials.
    pub(crate) fn basic_header(&self) -> Option<String> {
        match &self.secret {
            Secret::Basic { user, password } => Some(super::client::basic(user, password)),
            Secret::IdentityToken(_) => None,
        }
    }

    pub(crate) fn identity_token(&self) -> Option<&str> {
        match &self.secret {
            Secret::IdentityToken(t) => Some(t),
            Secret::Basic { .. } => None,
        }
    }
}

/// Looks credentials up for a registry host, given the estate's reference.
pub(crate) fn lookup(host: &str, reference: Option<&CredentialRef>) -> Option<Credential> {
    if let Some(CredentialRef::Env(var)) = reference {
        if let Ok(value) = std::env::var(var) {
            if let Some((user, password)) = value.split_once(':') {
                return Some(Credential {
                    secret: Secret::Basic {
                        user: user.to_string(),
                        password: password.to_string(),
                    },
                    origin: format!("env:{var}"),
                });
            }
        }
    }
    // Docker Hub's credentials live under its historic index URL.
    let server = match host {
        "docker.io" | "registry-1.docker.io" | "index.docker.io" => "https://index.docker.io/v1/",
        h => h,
    };
    match docker_credential::get_credential(server) {
        Ok(docker_credential::DockerCredential::UsernamePassword(user, password)) => {
            Some(Credential {
                secret: Secret::Basic { user, password },
                origin: "Docker's config.json".into(),
            })
        }
        Ok(docker_credential::DockerCredential::IdentityToken(t)) => Some(Credential {
            secret: Secret::IdentityToken(t),
            origin: "Docker's config.json".into(),
        }),
        Err(_) => None,
    }
}

/// Credentials for every registry host the estate's images use.
pub(crate) fn for_estate(
    estate: &Estate,
    hosts: &[(String, Option<RegistryId>)],
) -> HashMap<String, Credential> {
    let mut out = HashMap::new();
    for (host, registry) in hosts {
        if out.contains_key(host) {
            continue;
        }
        let reference = registry
            .and_then(|r| estate.registry(r).credentials.as_ref())
            .map(|c| &c.value);
        if let Some(c) = lookup(host, reference) {
            out.insert(host.clone(), c);
        }
    }
    out
}
