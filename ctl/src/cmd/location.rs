//! `location add|list|show|remove|test`: `location add` builds and checks the Location from its
//! flags before connecting (bad input exits 2 without dialling anything).

use mesh_proto::rules;
use mesh_proto::v1::{
    AddLocationRequest, GetLocationRequest, ListLocationsRequest, Location, LocationKind, RemoveLocationRequest,
    TestLocationRequest,
};

use super::session::{consistency, name_arg, Session};
use crate::cli::{GlobalArgs, LocationAddArgs};
use crate::errors::CliError;
use crate::output;

/// Builds the Location of `location add` and checks it as the cluster will (usage error on bad
/// input: exit 2). Whether its credential exists is for the cluster to say.
pub fn location_from_args(a: &LocationAddArgs) -> Result<Location, CliError> {
    let mut l = Location {
        name: a.name.clone(),
        ..Default::default()
    };
    match (&a.s3, &a.fs) {
        (Some(s3), None) => {
            let s3 = s3.strip_prefix("s3://").unwrap_or(s3);
            let (bucket, prefix) = s3.split_once('/').unwrap_or((s3, ""));
            l.kind = LocationKind::S3 as i32;
            l.bucket = bucket.to_string();
            l.prefix = prefix.to_string();
            l.region = a.region.clone().unwrap_or_default();
            l.endpoint = a.endpoint.clone().unwrap_or_default();
            l.path_style = a.path_style;
            // No --credential: the nodes' default AWS credential chain (env, profile, instance role).
            l.credential = a.credential.clone().unwrap_or_default();
            l.storage_class = a.storage_class.clone().unwrap_or_default();
            l.sse = match a.sse.as_deref().map(str::to_ascii_lowercase).as_deref() {
                None => String::new(),
                Some("aes256") => "AES256".into(),
                Some("aws:kms") | Some("kms") => "aws:kms".into(),
                Some(other) => {
                    return Err(CliError::usage(format!("--sse {other}: expected aes256 or aws:kms")));
                }
            };
            l.kms_key_id = a.kms_key.clone().unwrap_or_default();
        }
        (None, Some(path)) => {
            let s3_only = [
                ("--region", a.region.is_some()),
                ("--endpoint", a.endpoint.is_some()),
                ("--path-style", a.path_style),
                ("--credential", a.credential.is_some()),
                ("--storage-class", a.storage_class.is_some()),
                ("--sse", a.sse.is_some()),
                ("--kms-key", a.kms_key.is_some()),
            ];
            if let Some((flag, _)) = s3_only.iter().find(|(_, set)| *set) {
                return Err(CliError::usage(format!(
                    "{flag} applies to --s3 locations only, not to --fs"
                )));
            }
            l.kind = LocationKind::Fs as i32;
            l.fs_path = path.clone();
        }
        _ => return Err(CliError::usage("give exactly one of --s3 BUCKET[/PREFIX] or --fs PATH")),
    }
    rules::admit_location(&l).map_err(|e| {
        let hint = if l.kind == LocationKind::Fs as i32 {
            "an fs location is a directory with the same absolute path on every node"
        } else {
            "see `meshctl location add --help`"
        };
        CliError::usage(e).with_hint(hint)
    })
}

/// `location add NAME (--s3 ... | --fs PATH)`.
pub async fn location_add(g: &GlobalArgs, a: LocationAddArgs) -> Result<String, CliError> {
    let location = location_from_args(&a)?;
    let mut s = Session::open(g).await?;
    let resp = s
        .clients
        .location
        .add(AddLocationRequest {
            location: Some(location),
            replace: a.replace,
        })
        .await
        .map_err(|e| s.fail(e))?;
    Ok(output::location_added(resp.get_ref(), g.output))
}

/// `location list [--local]`.
pub async fn location_list(g: &GlobalArgs, local: bool) -> Result<String, CliError> {
    let mut s = Session::open(g).await?;
    let req = ListLocationsRequest {
        consistency: consistency(local),
    };
    let resp = s.clients.location.list(req).await.map_err(|e| s.fail(e))?;
    Ok(output::location_list(resp.get_ref(), g.output))
}

/// `location show NAME [--local]`.
pub async fn location_show(g: &GlobalArgs, name: String, local: bool) -> Result<String, CliError> {
    name_arg("location", &name)?;
    let mut s = Session::open(g).await?;
    let req = GetLocationRequest {
        name,
        consistency: consistency(local),
    };
    let resp = s.clients.location.get(req).await.map_err(|e| s.fail(e))?;
    Ok(output::location_show(resp.get_ref(), g.output))
}

/// `location remove NAME`.
pub async fn location_remove(g: &GlobalArgs, name: String) -> Result<String, CliError> {
    name_arg("location", &name)?;
    let mut s = Session::open(g).await?;
    let resp = s
        .clients
        .location
        .remove(RemoveLocationRequest { name: name.clone() })
        .await
        .map_err(|e| s.fail(e))?;
    Ok(output::location_removed(&name, resp.get_ref(), g.output))
}

/// `location test NAME`: the rendered report and whether every step passed.
pub async fn location_test(g: &GlobalArgs, name: String) -> Result<(String, bool), CliError> {
    name_arg("location", &name)?;
    let mut s = Session::open(g).await?;
    let resp = s
        .clients
        .location
        .test(TestLocationRequest { name })
        .await
        .map_err(|e| s.fail(e))?;
    let r = resp.into_inner();
    Ok((output::location_test(&r, g.output), r.ok))
}
