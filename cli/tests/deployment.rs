//! The production shape under `infra/`: the Kubernetes manifests and the Compose file are
//! valid by their schemas, and every setting they give Tidemark is one it takes. No cluster
//! runs here: what the README says was only validated is checked this far and no further.

use std::path::{Path, PathBuf};
use std::process::Command;

fn infra() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../infra")
}

fn manifests() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(infra().join("k8s"))
        .expect("infra/k8s exists")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    assert!(files.len() >= 8, "the manifests are there: {files:?}");
    files
}

fn validator(name: &str) -> PathBuf {
    let dir = std::env::var("TIDEMARK_VALIDATORS").expect("TIDEMARK_VALIDATORS is not set: run the tests with infra/test, which installs the validators");
    Path::new(&dir).join(name)
}

fn passes(command: &mut Command) {
    let output = command.output().unwrap_or_else(|e| panic!("{command:?} does not start: {e}"));
    assert!(output.status.success(), "{command:?} failed:\n{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
}

#[test]
fn the_kubernetes_manifests_validate_against_kubernetes_schemas() {
    passes(Command::new(validator("kubernetes-validate")).arg("--strict").arg("--quiet").args(manifests()));
}

#[test]
fn the_compose_file_validates_against_the_compose_specification() {
    passes(Command::new(validator("check-jsonschema")).args(["--builtin-schema", "vendor.compose-spec"]).arg(infra().join("compose.yaml")));
}

#[test]
fn a_validator_refuses_a_manifest_with_a_mistake() {
    let broken = std::fs::read_to_string(infra().join("k8s/query-service.yaml")).unwrap().replace("readinessProbe:", "readinessProb:");
    let file = std::env::temp_dir().join(format!("tidemark-broken-{}.yaml", std::process::id()));
    std::fs::write(&file, broken).unwrap();
    let output = Command::new(validator("kubernetes-validate")).arg("--strict").arg("--quiet").arg(&file).output().unwrap();
    assert!(!output.status.success(), "a misspelt field passed: {}", String::from_utf8_lossy(&output.stdout));
}

/// The settings named in the manifests and the Compose file: the ConfigMap's and Secrets'
/// keys and the containers' variables.
fn settings_named(text: &str) -> Vec<String> {
    let mut names: Vec<String> = text
        .split(|c: char| !(c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_'))
        .filter(|word| word.starts_with("TIDEMARK_") || *word == "DATABASE_URL")
        .map(String::from)
        .collect();
    names.sort();
    names.dedup();
    names
}

#[test]
fn every_setting_the_production_shape_gives_is_one_tidemark_takes() {
    let command = <tidemark::Config as clap::Args>::augment_args(clap::Command::new("tidemark"));
    let mut known: Vec<String> = command.get_arguments().filter_map(|a| a.get_env()).map(|e| e.to_string_lossy().into_owned()).collect();
    known.push("TIDEMARK_LOG".into()); // the binary's log filter
    let mut files = manifests();
    files.push(infra().join("compose.yaml"));
    let mut named = Vec::new();
    for file in &files {
        for setting in settings_named(&std::fs::read_to_string(file).unwrap()) {
            assert!(known.contains(&setting), "{} sets {setting}, which Tidemark does not take (it takes {known:?})", file.display());
            named.push(setting);
        }
    }
    for needed in ["DATABASE_URL", "TIDEMARK_READ_DATABASE_URL", "TIDEMARK_BROKERS", "TIDEMARK_REGISTRY_URL", "TIDEMARK_JWT_SECRET", "TIDEMARK_TOKEN_SECRET", "TIDEMARK_PROJECTOR_ADDR"] {
        assert!(named.iter().any(|n| n == needed), "no manifest sets {needed}");
    }
}
