//! Puts `memory.x` where the linker finds it. With `ODEFLASH_MODEL=/path/model.ofm` the model is
//! also linked into the MODEL sector (so `cargo run` flashes both); without it the sector is left
//! to a separately flashed model (see README).
use std::{env, fs, path::PathBuf};

fn main() {
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("OUT_DIR is set by cargo"));
    fs::copy("memory.x", out.join("memory.x")).expect("memory.x is next to build.rs");
    println!("cargo:rustc-link-search={}", out.display());
    println!("cargo:rerun-if-changed=memory.x");
    println!("cargo:rerun-if-env-changed=ODEFLASH_MODEL");
    let model = match env::var("ODEFLASH_MODEL") {
        Ok(path) if !path.is_empty() => {
            println!("cargo:rerun-if-changed={path}");
            fs::read(&path).unwrap_or_else(|e| panic!("ODEFLASH_MODEL={path}: {e}"))
        }
        _ => Vec::new(),
    };
    fs::write(out.join("model.ofm"), &model).expect("writing model.ofm");
    println!("cargo:rustc-env=ODEFLASH_MODEL_LEN={}", model.len());
}
