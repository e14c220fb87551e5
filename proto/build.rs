//! Compiles proto/mesh/v1/*.proto with protox (a pure-Rust protobuf compiler), so building needs
//! no `protoc` on PATH. The file descriptor set is also embedded for gRPC server reflection.
use std::{env, path::PathBuf};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files = [
        "mesh/v1/state.proto",
        "mesh/v1/internal.proto",
        "mesh/v1/cluster.proto",
        "mesh/v1/config.proto",
        "mesh/v1/jobs.proto",
    ];
    for f in &files {
        println!("cargo:rerun-if-changed={f}");
    }
    let fds = protox::compile(files, ["."])?;
    let out = PathBuf::from(env::var("OUT_DIR")?);
    std::fs::write(out.join("mesh_descriptor.bin"), prost::Message::encode_to_vec(&fds))?;
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        .compile_fds(fds)?;
    Ok(())
}
