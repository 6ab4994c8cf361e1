//! The rest of the test bed: the real helm v4 against a chart repository
//! served on 127.0.0.1 and a real control plane, and moto's S3 API.

use std::path::Path;

use k8s_openapi::api::apps::v1::Deployment;
use kube::Api;
use rekube_testbed::tools::{helm_command, run};
use rekube_testbed::{ChartRepo, Moto, TestCluster};

fn hello_chart() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/platform/charts/hello"))
}

#[test]
fn helm_is_v4() {
    let home = tempfile::tempdir().unwrap();
    let version = run(helm_command(home.path()).args(["version", "--short"]));
    assert!(version.starts_with("v4."), "helm version {version}");
}

#[tokio::test]
async fn helm_installs_a_chart_from_the_served_repository() {
    let repo = ChartRepo::serve(&[hello_chart()]);
    let cluster = TestCluster::with_kubelet("helm").await;
    let home = tempfile::tempdir().unwrap();

    let index = std::fs::read_to_string(repo.dir().join("index.yaml")).unwrap();
    assert!(index.contains("hello-0.1.0.tgz"), "index.yaml lists the chart:\n{index}");
    assert!(index.contains("digest:"), "index.yaml has digests");

    run(helm_command(home.path()).args(["repo", "add", "testbed", repo.url()]));
    let before = repo.requests();
    let out = run(cluster.helm(home.path()).args([
        "install",
        "hello",
        "testbed/hello",
        "--version",
        "0.1.0",
        "--set",
        "replicas=2",
        "--wait",
        "--timeout",
        "90s",
    ]));
    assert!(out.contains("STATUS: deployed"), "helm install output:\n{out}");
    assert!(repo.requests() > before, "the chart was fetched from the served repository");

    let d = Api::<Deployment>::namespaced(cluster.client(), "default").get("hello").await.unwrap();
    let status = d.status.unwrap();
    assert_eq!(status.available_replicas, Some(2), "helm --wait returned with 2 available pods");
}

#[tokio::test]
async fn moto_serves_s3_to_a_real_s3_client() {
    let moto = Moto::start().await;
    // boto3 (installed with moto) signs requests the way every S3 client does.
    let script = r#"
import sys, boto3
s3 = boto3.client("s3", endpoint_url=sys.argv[1], region_name="us-east-1",
                  aws_access_key_id="testing", aws_secret_access_key="testing")
s3.create_bucket(Bucket="rekube-backups")
s3.put_object(Bucket="rekube-backups", Key="prod/hello.txt", Body=b"hi")
print(s3.get_object(Bucket="rekube-backups", Key="prod/hello.txt")["Body"].read().decode())
print(",".join(o["Key"] for o in s3.list_objects_v2(Bucket="rekube-backups")["Contents"]))
"#;
    let out = run(std::process::Command::new(moto.python()).args(["-c", script, moto.endpoint()]));
    assert_eq!(out, "hi\nprod/hello.txt\n");
}
