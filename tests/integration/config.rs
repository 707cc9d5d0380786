use crate::util::*;

#[test]
fn check_config_prints_the_effective_config_with_env_overrides() {
    let o = bin()
        .args(["check-config", "--config", "config/driftline.toml"])
        .env("DRIFTLINE__POLICY__FDR_Q", "0.05")
        .env("DRIFTLINE__WINDOW__CURRENT", "45m")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let out = String::from_utf8(o.stdout).unwrap();
    assert!(out.contains("fdr_q = 0.05"), "{out}");
    assert!(out.contains("current = \"45m\""), "{out}");
}

#[test]
fn check_config_names_the_bad_key() {
    let dir = tempdir("config-bad");
    let cfg = dir.join("c.toml");
    std::fs::write(&cfg, "[policy]\npersistance_k = 3\n").unwrap();
    let o = run(&["check-config", "--config", cfg.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("persistance_k"), "{}", stderr(&o));
    std::fs::write(&cfg, "[window]\ncurrent = \"45s\"\n").unwrap();
    let o = run(&["check-config", "--config", cfg.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("window.current"), "{}", stderr(&o));
    let o = bin()
        .args(["check-config", "--config", "config/driftline.toml"])
        .env("DRIFTLINE__POLICY__FDR_Q", "2")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("policy.fdr_q"), "{}", stderr(&o));
}
