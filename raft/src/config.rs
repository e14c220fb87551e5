//! The replicated configuration of the copy engine: tables `locations` and `credentials`, their
//! validation and the pure apply of PutLocation / DeleteLocation / PutCredential /
//! DeleteCredential.
//!
//! Every check here is a function of the command and the tables only, so every node refuses the
//! same commands with the same message. The validators live in
//! `mesh_proto::rules` so that meshd and meshctl refuse bad input before proposing, with the same
//! words.
//!
//! Rules:
//! - names: `[A-Za-z0-9._-]{1,64}`;
//! - a location of kind s3 names an existing credential or none (the nodes' default chain, from
//!   0.2.0), a valid bucket (the S3 naming rules), an
//!   optional prefix (normalised: no leading '/', a trailing '/' when non-empty), an optional
//!   http(s) endpoint, SSE "", "AES256" or "aws:kms" (a KMS key id only with aws:kms);
//! - a location of kind fs has an absolute path and none of the s3 fields;
//! - a credential has exactly the fields of its kind; static secrets are ciphertext under the
//!   cluster data key (its fingerprint must be the cluster's when the cluster has one);
//!   assume_role's `via` must exist and must not lead back to the credential (no cycles);
//! - Put refuses an existing name (ALREADY_EXISTS) unless `replace` is set; a replace keeps
//!   `created_at_ms`;
//! - a credential used by a location, or by another credential's `via`, cannot be deleted (IN_USE);
//!   a location used by a job cannot be deleted ([`location_in_use`]).

use mesh_proto::rules::{normalize_location, validate_credential};
use mesh_proto::v1::{self as pb, CredentialKind, LocationKind};
use mesh_proto::Reason;

use crate::apply::{invalid, Refusal};

use crate::tables::Tables;

/// The name of an unfinished job that uses location `name`, which then cannot be removed.
pub fn location_in_use(t: &Tables, name: &str) -> Option<String> {
    crate::jobs::job_using_location(t, name)
}

/// What depends on credential `name`: `location:X` for locations that use it and
/// `credential:Y` for credentials that assume a role via it. Sorted.
pub fn credential_users(t: &Tables, name: &str) -> Vec<String> {
    let mut users: Vec<String> = t
        .locations
        .values()
        .filter(|l| l.credential == name)
        .map(|l| format!("location:{}", l.name))
        .collect();
    users.extend(
        t.credentials
            .values()
            .filter(|c| c.via == name)
            .map(|c| format!("credential:{}", c.name)),
    );
    users
}

pub(crate) fn put_location(t: &mut Tables, p: &pb::PutLocation, at: u64) -> Result<(), Refusal> {
    let l = p
        .location
        .as_ref()
        .ok_or_else(|| invalid("PutLocation without a location"))?;
    let mut l = normalize_location(l).map_err(invalid)?;
    if l.kind == LocationKind::S3 as i32 && !l.credential.is_empty() && !t.credentials.contains_key(&l.credential) {
        return Err((
            Reason::NotFound,
            format!(
                "location {:?}: credential {:?} does not exist (create it first with `meshctl credential add {} ...`)",
                l.name, l.credential, l.credential
            ),
        ));
    }
    match t.locations.get(&l.name) {
        Some(_) if !p.replace => {
            return Err((
                Reason::AlreadyExists,
                format!("location {:?} already exists (use --replace to change it)", l.name),
            ))
        }
        Some(old) => l.created_at_ms = old.created_at_ms,
        None => l.created_at_ms = at,
    }
    l.updated_at_ms = at;
    t.locations.insert(l.name.clone(), l);
    Ok(())
}

pub(crate) fn delete_location(t: &mut Tables, d: &pb::DeleteLocation) -> Result<(), Refusal> {
    if !t.locations.contains_key(&d.name) {
        return Err((Reason::NotFound, format!("location {:?} not found", d.name)));
    }
    if let Some(job) = location_in_use(t, &d.name) {
        return Err((
            Reason::InUse,
            format!(
                "location {:?} is in use by job {job}; wait for it to finish or cancel it",
                d.name
            ),
        ));
    }
    t.locations.remove(&d.name);
    Ok(())
}

pub(crate) fn put_credential(t: &mut Tables, p: &pb::PutCredential, at: u64) -> Result<(), Refusal> {
    let c = p
        .credential
        .as_ref()
        .ok_or_else(|| invalid("PutCredential without a credential"))?;
    validate_credential(c).map_err(invalid)?;
    let mut c = c.clone();
    if c.kind != CredentialKind::Static as i32 {
        // Only static credentials hold secrets; no fingerprint without ciphertext.
        c.key_fingerprint.clear();
    }
    if !c.key_fingerprint.is_empty() {
        if let Some(cluster) = &t.cluster {
            if !cluster.data_key_sha256.is_empty() && cluster.data_key_sha256 != c.key_fingerprint {
                return Err(invalid(format!(
                    "credential {:?}: its secrets are encrypted under data key {} but the cluster's data key is {}",
                    c.name,
                    short_fp(&c.key_fingerprint),
                    short_fp(&cluster.data_key_sha256)
                )));
            }
        }
    }
    if !c.via.is_empty() {
        if !t.credentials.contains_key(&c.via) {
            return Err((
                Reason::NotFound,
                format!("credential {:?}: via credential {:?} does not exist", c.name, c.via),
            ));
        }
        // Follow the via chain, with this credential in place, and refuse a cycle.
        let mut seen = vec![c.name.clone()];
        let mut cur = c.via.clone();
        while !cur.is_empty() {
            if seen.contains(&cur) {
                seen.push(cur);
                return Err(invalid(format!(
                    "credential {:?}: via would make a cycle ({})",
                    c.name,
                    seen.join(" -> ")
                )));
            }
            seen.push(cur.clone());
            cur = t.credentials.get(&cur).map(|x| x.via.clone()).unwrap_or_default();
        }
    }
    match t.credentials.get(&c.name) {
        Some(_) if !p.replace => {
            return Err((
                Reason::AlreadyExists,
                format!("credential {:?} already exists (use --replace to change it)", c.name),
            ))
        }
        Some(old) => c.created_at_ms = old.created_at_ms,
        None => c.created_at_ms = at,
    }
    c.updated_at_ms = at;
    t.credentials.insert(c.name.clone(), c);
    Ok(())
}

pub(crate) fn delete_credential(t: &mut Tables, d: &pb::DeleteCredential) -> Result<(), Refusal> {
    if !t.credentials.contains_key(&d.name) {
        return Err((Reason::NotFound, format!("credential {:?} not found", d.name)));
    }
    let users = credential_users(t, &d.name);
    if !users.is_empty() {
        return Err((
            Reason::InUse,
            format!(
                "credential {:?} is in use by {}; remove or change those first",
                d.name,
                users.join(", ")
            ),
        ));
    }
    t.credentials.remove(&d.name);
    Ok(())
}

/// The first 16 hex digits of a fingerprint, for messages.
pub fn short_fp(fp: &str) -> &str {
    &fp[..fp.len().min(16)]
}
