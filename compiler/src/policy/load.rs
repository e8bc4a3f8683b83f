//! Loading an estate's policies for a compile: the module bytes (embedded
//! for `stdlib:`), their pins (in the estate, else in keelson.lock), and the
//! checks a module must pass before any call.

use std::collections::{BTreeMap, HashMap};

use crate::diagnostic::{Code, Diagnostic, Diagnostics};
use crate::lock::{Lock, LockedPolicy};
use crate::model::{Estate, Policy, PolicyId, PolicySource, StageSource};

use super::{Host, Limits, Module};

/// The modules a compile may call, by policy.
#[derive(Default)]
pub struct Policies {
    pub(super) host: Option<Host>,
    pub(super) modules: HashMap<PolicyId, Module>,
}

impl Policies {
    pub fn get(&self, id: PolicyId) -> Option<(&Host, &Module)> {
        Some((self.host.as_ref()?, self.modules.get(&id)?))
    }

    /// The pins to record in keelson.lock, by policy name.
    pub(crate) fn lock_entries(&self, estate: &Estate) -> BTreeMap<String, LockedPolicy> {
        self.modules
            .iter()
            .map(|(&id, m)| {
                (
                    estate.policy(id).name.value.clone(),
                    LockedPolicy {
                        source: m.label.clone(),
                        blake3: m.hash.clone(),
                    },
                )
            })
            .collect()
    }
}

/// How a policy is used, which decides the entry point it must export.
#[derive(Debug, Clone, Copy, Default)]
struct Uses {
    filter: Option<crate::diagnostic::Loc>,
    gate: Option<crate::diagnostic::Loc>,
}

/// The label of a policy's module, as messages and the lock name it.
pub fn label(source: &PolicySource) -> String {
    match source {
        PolicySource::Stdlib(name) => format!("stdlib:{name}"),
        PolicySource::Path(p) => p.to_string_lossy().trim_start_matches("./").to_string(),
    }
}

/// Loads every policy the estate's deployments use: reads each module (or
/// takes the embedded standard one), checks it against its pin (estate
/// `pin=`, else keelson.lock), compiles it, and checks it exports the entry
/// point each use needs. Reads module files and the compiled-module cache;
/// writes only that cache. Never fails and never panics on bad input: every
/// problem is a diagnostic, and a policy that failed is absent from the
/// result.
pub fn load(
    estate: &Estate,
    lock: Option<&Lock>,
    limits: Limits,
    cache_dir: Option<std::path::PathBuf>,
    diags: &mut Diagnostics,
) -> Policies {
    let uses = uses(estate);
    if uses.is_empty() {
        return Policies::default();
    }
    let host = match Host::new(limits, cache_dir) {
        Ok(h) => h,
        Err(e) => {
            let (&first, _) = uses.iter().next().expect("not empty");
            diags.push(
                Diagnostic::error(Code::InvalidPolicy, estate.policy(first).loc, e)
                    .with_help("this is a fault of keelson or of this machine; please report it"),
            );
            return Policies::default();
        }
    };
    let mut modules = HashMap::new();
    for (id, used) in uses {
        let policy = estate.policy(id);
        let label = label(&policy.source.value);
        let Some(bytes) = module_bytes(estate, policy, &label, limits.module_size, diags) else {
            continue;
        };
        // A module over the size limit was read only in part: `Host::load`
        // refuses it, and its pin cannot be checked.
        let whole = bytes.len() <= limits.module_size;
        if whole && !pin_holds(policy, &label, &bytes, lock, diags) {
            continue;
        }
        let module = match host.load(&label, &bytes) {
            Ok(m) => m,
            Err(why) => {
                diags.push(
                    Diagnostic::error(
                        Code::InvalidPolicy,
                        policy.source.loc,
                        format!("policy `{}`: module `{label}` cannot be used: {why}", policy.name.value),
                    )
                    .with_help("build it with the keelson-policy SDK (see the book's policy guide), or fix it against the ABI spec"),
                );
                continue;
            }
        };
        if exports_what_it_is_used_as(policy, &label, &module, used, diags) {
            modules.insert(id, module);
        }
    }
    Policies {
        host: Some(host),
        modules,
    }
}

/// Each policy a deployment uses, with where it is first used as a filter
/// and as a gate (a gate of a stage only counts for an app with images).
fn uses(estate: &Estate) -> BTreeMap<PolicyId, Uses> {
    let mut uses: BTreeMap<PolicyId, Uses> = BTreeMap::new();
    for app in &estate.apps {
        for d in &app.deployments {
            match &estate.stage(d.stage.value).source {
                StageSource::Registry { filters } => {
                    for f in app.images.iter().flat_map(|i| &i.filters).chain(filters) {
                        uses.entry(f.value).or_default().filter.get_or_insert(f.loc);
                    }
                }
                StageSource::Promotion { gates, .. } => {
                    if !app.images.is_empty() {
                        for g in gates {
                            uses.entry(g.value).or_default().gate.get_or_insert(g.loc);
                        }
                    }
                }
            }
        }
    }
    uses
}

/// The module's bytes: embedded for `stdlib:`, else read from the estate's
/// directory (a read failure is reported). At most one byte past `limit` is
/// read, so a huge file costs no memory; `Host::load` refuses it.
fn module_bytes(
    estate: &Estate,
    policy: &Policy,
    label: &str,
    limit: usize,
    diags: &mut Diagnostics,
) -> Option<Vec<u8>> {
    let read = |path: &std::path::Path| -> std::io::Result<Vec<u8>> {
        use std::io::Read;
        let mut bytes = Vec::new();
        std::fs::File::open(path)?
            .take(limit as u64 + 1)
            .read_to_end(&mut bytes)?;
        Ok(bytes)
    };
    match &policy.source.value {
        // Lowering refuses unknown names.
        PolicySource::Stdlib(name) => super::stdlib::module(name).map(<[u8]>::to_vec),
        PolicySource::Path(p) => {
            // Nothing outside the estate is read, even through a symlink.
            let path = match crate::check::resolve_inside(&estate.root, p) {
                crate::check::Resolved::Inside(real) => real,
                crate::check::Resolved::Outside(target) => {
                    let loc = policy.source.loc;
                    diags.push(crate::check::outside_estate(
                        loc,
                        "the policy module",
                        p,
                        &target,
                    ));
                    return None;
                }
                // Reading it says why it is not there.
                crate::check::Resolved::Missing => estate.root.join(p),
            };
            match read(&path) {
                Ok(b) => Some(b),
                Err(e) => {
                    diags.push(
                        Diagnostic::error(
                            Code::InvalidPolicy,
                            policy.source.loc,
                            format!("cannot read policy module `{label}`: {e}"),
                        )
                        .with_help("check that the file exists and is readable"),
                    );
                    None
                }
            }
        }
    }
}

/// Whether the module is the one pinned: by the estate's `pin=`, else (for
/// a module from a file) by keelson.lock's record of the same source.
fn pin_holds(
    policy: &Policy,
    label: &str,
    bytes: &[u8],
    lock: Option<&Lock>,
    diags: &mut Diagnostics,
) -> bool {
    let hash = crate::lock::hash(bytes);
    let name = &policy.name.value;
    if let Some(pin) = &policy.pin {
        if pin.value.0 != hash {
            diags.push(
                Diagnostic::error(
                    Code::PolicyPinMismatch,
                    pin.loc,
                    format!("policy `{name}`: module `{label}` has blake3 {hash}, not the pinned {}", pin.value.0),
                )
                .with_help("if the module changed on purpose, pin the new hash (`keelson policy hash` prints it); otherwise restore the module the pin names"),
            );
            return false;
        }
    } else if let Some(locked) = lock.and_then(|l| l.policies.get(name))
        && locked.source == label
        && locked.blake3 != hash
        // A standard policy is pinned by the keelson release that embeds it.
        && !matches!(policy.source.value, PolicySource::Stdlib(_))
    {
        diags.push(
            Diagnostic::error(
                Code::PolicyPinMismatch,
                policy.source.loc,
                format!(
                    "policy `{name}`: module `{label}` changed since keelson.lock recorded it (blake3 {} then, {hash} now)",
                    locked.blake3
                ),
            )
            .with_help(format!("if the change is intended, pin it: `pin=\"blake3:{hash}\"`; otherwise restore the module")),
        );
        return false;
    }
    true
}

/// Whether the module exports `filter` where it is used as a filter and
/// `promote` where it is used as a gate; each missing one is reported.
fn exports_what_it_is_used_as(
    policy: &Policy,
    label: &str,
    module: &Module,
    used: Uses,
    diags: &mut Diagnostics,
) -> bool {
    let name = &policy.name.value;
    let mut fine = true;
    for (loc, needed, has) in [
        (used.filter, "filter", module.exports_filter),
        (used.gate, "promote", module.exports_promote),
    ] {
        if let Some(loc) = loc
            && !has
        {
            fine = false;
            let role = if needed == "filter" {
                "a filter"
            } else {
                "a gate"
            };
            diags.push(
                Diagnostic::error(
                    Code::InvalidPolicy,
                    loc,
                    format!("policy `{name}` is used as {role}, but module `{label}` does not export `{needed}`"),
                )
                .with_secondary(policy.loc, "declared here")
                .with_help(if needed == "filter" {
                    "use it as a `gate` of a promoting stage, or choose a policy that filters tags"
                } else {
                    "use it as a `filter`, or choose a policy that gates promotion"
                }),
            );
        }
    }
    fine
}
