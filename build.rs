//! Generates include/bill.h with cbindgen and sets the shared library's SONAME.

use std::env;
use std::fs;
use std::path::PathBuf;

fn main() {
    let dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR").unwrap());
    println!("cargo:rerun-if-changed=src");
    println!("cargo:rerun-if-changed=cbindgen.toml");
    println!("cargo:rerun-if-changed=build.rs");

    let major = env::var("CARGO_PKG_VERSION_MAJOR").unwrap();
    let minor = env::var("CARGO_PKG_VERSION_MINOR").unwrap();
    let patch = env::var("CARGO_PKG_VERSION_PATCH").unwrap();
    let version = env::var("CARGO_PKG_VERSION").unwrap();

    // The SONAME carries the major version only: minor releases are additive.
    let target_os = env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    if target_os == "linux" || target_os == "android" || target_os.ends_with("bsd") {
        println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libbill.so.{major}");
    }

    let mut config = cbindgen::Config::from_file(dir.join("cbindgen.toml")).expect("cbindgen.toml");
    if let Some(after) = config.after_includes.as_mut() {
        *after = after
            .replace("@MAJOR@", &major)
            .replace("@MINOR@", &minor)
            .replace("@PATCH@", &patch)
            .replace("@VERSION@", &version);
    }
    let bindings = match cbindgen::Builder::new().with_crate(&dir).with_config(config).generate() {
        Ok(b) => b,
        Err(e) => {
            // A syntax error in src/ is reported by rustc itself; keep the old header.
            println!("cargo:warning=cbindgen could not generate bill.h: {e}");
            return;
        }
    };
    let out = PathBuf::from(env::var("OUT_DIR").unwrap()).join("bill.h");
    bindings.write_to_file(&out);
    // Keep the committed header current; `make check-header` fails if it drifted.
    let fresh = fs::read(&out).unwrap();
    let committed = dir.join("include").join("bill.h");
    if fs::read(&committed).ok().as_deref() != Some(&fresh[..]) {
        fs::create_dir_all(dir.join("include")).unwrap();
        fs::write(&committed, &fresh).unwrap();
    }
}
