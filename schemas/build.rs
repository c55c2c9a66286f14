//! Fails the build when a schema in `avro/` breaks BACKWARD_TRANSITIVE compatibility with
//! its own history, and generates the catalog of the latest version of every record.
//!
//! Layout: `avro/<record full name>/v<N>.avsc`. To change a schema, add the next version
//! beside the old ones; never edit a version that was released.

#[path = "src/compatibility.rs"]
#[allow(dead_code)]
mod compatibility;

use std::fs;
use std::path::Path;

fn main() {
    println!("cargo:rerun-if-changed=avro");
    let mut catalog = String::from("/// (record full name, version, schema JSON) of the latest version of every record.\npub const LATEST: &[(&str, u32, &str)] = &[\n");
    let mut records: Vec<_> = fs::read_dir("avro").expect("schemas/avro exists").map(|e| e.unwrap().path()).collect();
    records.sort();
    for dir in records {
        let full_name = dir.file_name().unwrap().to_string_lossy().to_string();
        let history = versions(&dir);
        let mut parsed = Vec::new();
        for (version, path) in &history {
            let text = fs::read_to_string(path).unwrap();
            let schema = apache_avro::Schema::parse_str(&text)
                .unwrap_or_else(|e| panic!("{} is not a valid Avro schema: {e}", path.display()));
            let declared = match &schema {
                apache_avro::Schema::Record(r) => r.name.fullname(None),
                _ => panic!("{} must be a record", path.display()),
            };
            assert_eq!(declared, full_name, "{} declares {declared} but lives under {full_name}", path.display());
            let problems = compatibility::check(compatibility::DEFAULT_LEVEL, &schema, &parsed);
            if !problems.is_empty() {
                panic!(
                    "{} v{version} breaks {} compatibility:\n  {}",
                    full_name,
                    compatibility::DEFAULT_LEVEL.name(),
                    problems.join("\n  ")
                );
            }
            parsed.push(schema);
        }
        let (latest, path) = history.last().expect("at least v1");
        let abs = fs::canonicalize(path).unwrap();
        catalog.push_str(&format!("    ({full_name:?}, {latest}, include_str!({:?})),\n", abs.display().to_string()));
    }
    catalog.push_str("];\n");
    let out = Path::new(&std::env::var("OUT_DIR").unwrap()).join("catalog.rs");
    fs::write(out, catalog).unwrap();
}

/// The versions of one record, in order, checking that they are numbered 1..N without gaps.
fn versions(dir: &Path) -> Vec<(u32, std::path::PathBuf)> {
    let mut found: Vec<(u32, std::path::PathBuf)> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter_map(|p| {
            let stem = p.file_name()?.to_str()?.strip_suffix(".avsc")?.strip_prefix('v')?.parse().ok()?;
            Some((stem, p))
        })
        .collect();
    found.sort();
    for (i, (v, _)) in found.iter().enumerate() {
        assert_eq!(*v as usize, i + 1, "{}: versions must be v1.avsc, v2.avsc, ... without gaps", dir.display());
    }
    found
}
