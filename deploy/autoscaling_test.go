package deploy_test

import (
	"strconv"
	"testing"
)

// The optional autoscaling overlay decodes strictly into KEDA's and the
// autoscaling/v2 types, scales the worker on the jobs-worker consumer's
// backlog of the account and stream the worker uses, never past the change
// feed's partitions, and keeps pingapi at or above its rollout floor.
func TestAutoscalingOverlayScalesOnBacklogWithinThePartitions(t *testing.T) {
	objs := render(t, "deploy/manifests/overlays/autoscaling")
	for _, app := range appContainers {
		if r := objs.deployment(t, app).Spec.Replicas; r != nil {
			t.Errorf("%s replicas = %d: an autoscaled Deployment must not set them (apply would reset the autoscaler)", app, *r)
		}
	}

	so, ok := objs.scaledObjs["worker"]
	if !ok {
		t.Fatal("no ScaledObject worker")
	}
	if ref := so.Spec.ScaleTargetRef; ref == nil || ref.Kind != "Deployment" || ref.Name != "worker" {
		t.Errorf("scaleTargetRef = %+v, want Deployment worker", ref)
	}
	worker := container(t, &objs.deployment(t, "worker").Spec.Template.Spec, "worker")
	// The partition count: the manifest's, else the binary's default.
	partitions, ok := envValue(worker, "CHANGEFEED__PARTITIONS")
	if !ok {
		partitions = helpOf(t, "worker").defaults["changefeed.partitions"]
	}
	n, err := strconv.Atoi(partitions)
	if err != nil {
		t.Fatalf("worker CHANGEFEED__PARTITIONS = %q: %v", partitions, err)
	}
	if so.Spec.MaxReplicaCount == nil || int(*so.Spec.MaxReplicaCount) > n || *so.Spec.MaxReplicaCount < 2 {
		t.Errorf("maxReplicaCount = %v, want 2..%d (CHANGEFEED__PARTITIONS)", so.Spec.MaxReplicaCount, n)
	}
	if so.Spec.MinReplicaCount == nil || *so.Spec.MinReplicaCount < 1 {
		t.Errorf("minReplicaCount = %v, want >= 1: the change feed needs a replica even with no backlog", so.Spec.MinReplicaCount)
	}
	if len(so.Spec.Triggers) != 1 {
		t.Fatalf("triggers = %+v, want one", so.Spec.Triggers)
	}
	trig := so.Spec.Triggers[0]
	// What the worker's own user and the nats.conf account say.
	deployedObjs, _ := deployed(t) // the same nats.conf, with the Secret it reads
	opts := loadNATSConfig(t, deployedObjs, "nats-0")
	var account string
	for _, u := range opts.Users {
		if u.Username == "worker" {
			account = u.Account.Name
		}
	}
	want := map[string]string{
		"account":                      account,
		"stream":                       "JOBS",
		"consumer":                     "jobs-worker",
		"natsServerMonitoringEndpoint": "nats-headless.hostkit.svc.cluster.local:" + strconv.Itoa(opts.HTTPPort),
	}
	if trig.Type != "nats-jetstream" {
		t.Errorf("trigger type %q, want nats-jetstream", trig.Type)
	}
	for k, v := range want {
		if trig.Metadata[k] != v {
			t.Errorf("trigger %s = %q, want %q", k, trig.Metadata[k], v)
		}
	}
	if _, err := strconv.Atoi(trig.Metadata["lagThreshold"]); err != nil {
		t.Errorf("lagThreshold %q: %v", trig.Metadata["lagThreshold"], err)
	}
	// KEDA reaches the monitoring port through the locked-down namespace.
	if _, ok := objs.netpols["nats-monitor-from-keda"]; !ok {
		t.Error("no NetworkPolicy lets KEDA read NATS's monitoring port")
	}

	hpa, ok := objs.hpas["pingapi"]
	if !ok {
		t.Fatal("no HorizontalPodAutoscaler pingapi")
	}
	if hpa.Spec.ScaleTargetRef.Kind != "Deployment" || hpa.Spec.ScaleTargetRef.Name != "pingapi" {
		t.Errorf("HPA target = %+v, want Deployment pingapi", hpa.Spec.ScaleTargetRef)
	}
	floor := int32(3) // the kind overlay's replicas, which the PDB and rollout assume
	if kind := render(t, kindOverlay).deployment(t, "pingapi").Spec.Replicas; kind != nil {
		floor = *kind
	}
	if hpa.Spec.MinReplicas == nil || *hpa.Spec.MinReplicas < floor || hpa.Spec.MaxReplicas <= *hpa.Spec.MinReplicas {
		t.Errorf("HPA replicas %v..%d, want from %d (the fixed count it replaces) to more", hpa.Spec.MinReplicas, hpa.Spec.MaxReplicas, floor)
	}
}
