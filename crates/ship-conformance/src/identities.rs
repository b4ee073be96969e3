//! The tool's own identities. Every concurrently running case dials with its own certificate,
//! so the DUT never sees two of the tool's connections from one SKI (that would be a double
//! connection, §12.2.3, and the DUT would rightly close one). The DUT must trust all of them.

use std::collections::BTreeMap;
use std::path::Path;

use ship_hub::Ski;
use ship_hub::identity::{CertificateSubject, Identity, IdentityError};

/// Name of the identity the tool presents when the DUT dials it (`--listen`). Its SKI is
/// smaller than the DUT's, as TC_SHIP_CONN_001 needs ("DUT has the larger SKI").
pub const LISTENER: &str = "listener";

/// Names of all identities the tool uses, besides [`LISTENER`]: one per case that dials the DUT.
pub(crate) const DIALLERS: &[&str] = &[
    "role_001",
    "role_003_a",
    "cmi_001",
    "cmi_003",
    "cmi_005",
    "hello_001",
    "hello_002",
    "hello_003",
    "hello_004",
    "prot_001",
    "prot_003",
    "prot_005",
    "pin_001",
    "ext_pin_001",
    "ext_pin_002",
    "ext_pin_003",
    "term_001",
    "am_001",
    "msg_001",
    "msg_002",
    "msg_003",
    "amdata_001",
    "amdata_002",
    "amdata_003",
    "amdata_004",
    "sec_002",
];

/// The set of identities of one tool run.
#[derive(Debug, Clone)]
pub struct ToolIdentities {
    by_name: BTreeMap<String, Identity>,
}

fn subject(name: &str) -> CertificateSubject {
    CertificateSubject {
        common_name: format!("ship-conformance {name}"),
        organization: "ship-hub".into(),
        country: "DE".into(),
    }
}

/// Generates an identity for `name`; for [`LISTENER`] one whose SKI is smaller than `dut`.
fn generate(name: &str, dut: Option<Ski>) -> Result<Identity, IdentityError> {
    loop {
        let identity = Identity::generate(&subject(name))?;
        match dut {
            Some(dut) if name == LISTENER && identity.ski() >= dut => continue,
            _ => return Ok(identity),
        }
    }
}

impl ToolIdentities {
    /// Fresh identities for one run. `dut` is the DUT's SKI, if known, so that the listener
    /// identity can be made smaller than it.
    pub fn generate(dut: Option<Ski>) -> Result<Self, IdentityError> {
        let mut by_name = BTreeMap::new();
        for name in DIALLERS.iter().copied().chain([LISTENER]) {
            by_name.insert(name.to_owned(), generate(name, dut)?);
        }
        Ok(ToolIdentities { by_name })
    }

    /// Identities kept in `dir/<name>/` (created on first use), so a device needs to be told
    /// the SKIs only once. A stored listener identity that is not smaller than `dut` is
    /// replaced.
    pub fn load_or_create(dir: &Path, dut: Option<Ski>) -> Result<Self, IdentityError> {
        let mut by_name = BTreeMap::new();
        for name in DIALLERS.iter().copied().chain([LISTENER]) {
            let sub = dir.join(name);
            let mut identity = Identity::load_or_create(&sub, &subject(name))?;
            if let Some(dut) = dut
                && name == LISTENER
                && identity.ski() >= dut
            {
                identity = generate(name, Some(dut))?;
                identity.save(&sub)?;
            }
            by_name.insert(name.to_owned(), identity);
        }
        Ok(ToolIdentities { by_name })
    }

    /// Only the [`LISTENER`] identity, for `--single-identity` (the DUT then trusts just that
    /// one SKI).
    pub fn single(mut self) -> Self {
        self.by_name.retain(|name, _| name == LISTENER);
        self
    }

    /// The identity called `name` (see [`LISTENER`]).
    pub fn get(&self, name: &str) -> Option<&Identity> {
        self.by_name.get(name)
    }

    /// Every (name, SKI) the DUT must trust before the run.
    pub fn trusted(&self) -> Vec<(String, Ski)> {
        self.by_name
            .iter()
            .map(|(name, identity)| (name.clone(), identity.ski()))
            .collect()
    }

    /// The SHIP ID the tool announces for `name` in `accessMethods`.
    pub fn ship_id(name: &str) -> String {
        format!("ship-conformance-{}", name.replace('_', "-"))
    }
}
