//! The real kubectl (v1.35) and helm (v4) binaries against the simulator:
//! the CRD applied server-side, a DataCluster applied, listed with its printer
//! columns, scaled, refused by its CEL rules, deleted; the chart installed and
//! uninstalled. The binaries are the ones `.ci/run` installs into
//! `.ci/tools/bin`; without them the test says so and passes.

use std::path::{Path, PathBuf};
use std::process::Output;

use quiver_kube_sim::{Config, start};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn tool(name: &str) -> Option<PathBuf> {
    let p = root().join(".ci/tools/bin").join(name);
    p.is_file().then_some(p)
}

struct Env {
    kubeconfig: PathBuf,
    home: PathBuf,
}

impl Env {
    async fn run(&self, bin: &Path, args: &[&str]) -> Output {
        let out = tokio::process::Command::new(bin)
            .args(args)
            .env("KUBECONFIG", &self.kubeconfig)
            .env("HOME", &self.home)
            .env("HELM_CACHE_HOME", self.home.join("helm-cache"))
            .env("HELM_CONFIG_HOME", self.home.join("helm-config"))
            .env("HELM_DATA_HOME", self.home.join("helm-data"))
            .current_dir(root())
            .output()
            .await
            .expect("run the tool");
        println!(
            "$ {} {}\n{}{}",
            bin.file_name().unwrap().to_string_lossy(),
            args.join(" "),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    async fn ok(&self, bin: &Path, args: &[&str]) -> String {
        let out = self.run(bin, args).await;
        assert!(out.status.success(), "{} {:?} failed", bin.display(), args);
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

const DATACLUSTER: &str = "apiVersion: quiver.dev/v1alpha1
kind: DataCluster
metadata:
  name: towers
spec:
  workers:
    replicas: 2
  datasets:
    - name: celltowers
      preset: celltowers
      source: s3://bucket/towers/
";

const INVALID: &str = "apiVersion: quiver.dev/v1alpha1
kind: DataCluster
metadata:
  name: bad
spec:
  dashboard:
    autoscaling: {minReplicas: 3, maxReplicas: 2}
  datasets:
    - name: a
      preset: celltowers
      source: s3://bucket/a/
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_and_helm_drive_the_simulator() {
    let (Some(kubectl), Some(helm)) = (tool("kubectl"), tool("helm")) else {
        println!("SKIPPED: kubectl/helm not found in .ci/tools/bin (bash .ci/run installs them)");
        return;
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let handle = start(listener, Config::default()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let env = Env { kubeconfig: dir.path().join("kubeconfig"), home: dir.path().to_path_buf() };
    handle.write_kubeconfig(&env.kubeconfig).unwrap();
    std::fs::write(dir.path().join("dc.yaml"), DATACLUSTER).unwrap();
    std::fs::write(dir.path().join("bad.yaml"), INVALID).unwrap();
    let dc = dir.path().join("dc.yaml");
    let dc = dc.to_str().unwrap();
    let bad = dir.path().join("bad.yaml");
    let bad = bad.to_str().unwrap();

    // An imperative create through kubectl's typed client (a protobuf body).
    let out = env.ok(&kubectl, &["create", "namespace", "made-by-kubectl"]).await;
    assert!(out.contains("namespace/made-by-kubectl created"), "{out}");
    let phase = env.ok(&kubectl, &["get", "namespace", "made-by-kubectl", "-o", "jsonpath={.status.phase}"]).await;
    assert_eq!(phase.trim(), "Active");

    let out = env.ok(&kubectl, &["apply", "--server-side", "-f", "crds/"]).await;
    assert!(out.contains("customresourcedefinition.apiextensions.k8s.io/dataclusters.quiver.dev serverside-applied"));

    let out = env.ok(&kubectl, &["apply", "-f", dc]).await;
    assert!(out.contains("datacluster.quiver.dev/towers created"), "{out}");
    env.ok(
        &kubectl,
        &[
            "patch",
            "dc",
            "towers",
            "--subresource=status",
            "--type=merge",
            "-p",
            r#"{"status":{"phase":"Ready","workers":"2/2","shardsSummary":"2/2","replicasPerShard":1,"rows":1234}}"#,
        ],
    )
    .await;
    let out = env.ok(&kubectl, &["get", "dc"]).await;
    // The CRD's printer columns (read from crds/, so the test follows them).
    let lines: Vec<Vec<&str>> = out.lines().map(|l| l.split_whitespace().collect()).collect();
    let col =
        |name: &str| lines[0].iter().position(|c| *c == name).unwrap_or_else(|| panic!("no {name} column: {out}"));
    assert_eq!(lines[0][0], "NAME", "{out}");
    assert_eq!(lines[1][0], "towers", "{out}");
    assert_eq!(lines[1][col("PHASE")], "Ready", "{out}");
    assert_eq!(lines[1][col("SHARDS")], "2/2", "{out}");
    assert_eq!(lines[1][col("ROWS")], "1234", "{out}");

    // A server-side re-apply of the same manifest changes nothing.
    let rv = |s: String| s.trim().to_string();
    env.ok(&kubectl, &["apply", "--server-side", "--force-conflicts", "-f", dc]).await;
    let before = rv(env.ok(&kubectl, &["get", "dc", "towers", "-o", "jsonpath={.metadata.resourceVersion}"]).await);
    let out = env.ok(&kubectl, &["apply", "--server-side", "-f", dc]).await;
    assert!(out.contains("serverside-applied"), "{out}");
    let after = rv(env.ok(&kubectl, &["get", "dc", "towers", "-o", "jsonpath={.metadata.resourceVersion}"]).await);
    assert_eq!(before, after);

    let out = env.ok(&kubectl, &["scale", "dc", "towers", "--replicas", "3"]).await;
    assert!(out.contains("datacluster.quiver.dev/towers scaled"), "{out}");
    let replicas = env.ok(&kubectl, &["get", "dc", "towers", "-o", "jsonpath={.spec.workers.replicas}"]).await;
    assert_eq!(replicas.trim(), "3");

    let refused = env.run(&kubectl, &["apply", "-f", bad]).await;
    assert!(!refused.status.success());
    let err = String::from_utf8_lossy(&refused.stderr);
    let crd: serde_json::Value =
        serde_yaml::from_str(&std::fs::read_to_string(root().join("crds/datacluster.yaml")).unwrap()).unwrap();
    let rule = crd
        .pointer("/spec/versions/0/schema/openAPIV3Schema/properties/spec/properties/dashboard/properties/autoscaling/x-kubernetes-validations/0/message")
        .and_then(|m| m.as_str())
        .expect("the CRD has a rule on spec.dashboard.autoscaling");
    assert!(
        err.contains(&format!(
            "The DataCluster \"bad\" is invalid: spec.dashboard.autoscaling: Invalid value: \"object\": {rule}"
        )),
        "{err}"
    );

    let out = env.ok(&kubectl, &["delete", "dc", "towers"]).await;
    assert!(out.contains("datacluster.quiver.dev \"towers\" deleted"), "{out}");
    let out = env.run(&kubectl, &["get", "dc"]).await;
    assert!(String::from_utf8_lossy(&out.stderr).contains("No resources found"));

    let out = env.ok(&helm, &["install", "quiver", "charts/quiver", "-n", "quiver", "--create-namespace"]).await;
    assert!(out.contains("STATUS: deployed"), "{out}");
    let out = env.ok(&helm, &["list", "-n", "quiver"]).await;
    assert!(out.contains("deployed"), "{out}");
    let out = env
        .ok(
            &kubectl,
            &["get", "deployment,serviceaccount,role,rolebinding,poddisruptionbudget", "-n", "quiver", "-o", "name"],
        )
        .await;
    for want in [
        "deployment.apps/quiver-operator",
        "serviceaccount/quiver-operator",
        "poddisruptionbudget.policy/quiver-operator",
    ] {
        assert!(out.contains(want), "{want} missing from {out}");
    }
    env.ok(&kubectl, &["get", "clusterrole", "quiver-operator"]).await;

    let out = env.ok(&helm, &["uninstall", "quiver", "-n", "quiver"]).await;
    assert!(out.contains("uninstalled"), "{out}");
    let left = env
        .ok(
            &kubectl,
            &[
                "get",
                "deployment,serviceaccount,role,rolebinding,poddisruptionbudget,secret,service",
                "-n",
                "quiver",
                "-o",
                "name",
            ],
        )
        .await;
    assert_eq!(left.trim(), "", "left behind: {left}");
    assert!(!env.run(&kubectl, &["get", "clusterrole", "quiver-operator"]).await.status.success());
    // The CRD stays (helm never deletes CRDs).
    env.ok(&kubectl, &["get", "crd", "dataclusters.quiver.dev"]).await;

    // Every tool's requests were counted under its own name.
    let counts = handle.sim.accounting.snapshot();
    for client in ["kubectl", "Helm"] {
        assert!(counts.iter().any(|c| c.client == client), "no requests counted for {client}: {counts:?}");
    }
    handle.stop().await;
}
