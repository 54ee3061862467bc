package deploy_test

import (
	"context"
	"net/http"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// natsServer starts one nats-server in-process with the rendered nats.conf
// (users, permissions, accounts exactly as deployed), standalone on a free
// loopback port: the cluster block and monitoring are dropped, the store
// goes to a temporary directory.
func natsServer(t *testing.T, objs *objects) string {
	t.Helper()
	opts, err := server.ProcessConfigFile(writeNATSConfig(t, objs, "nats-0"))
	if err != nil {
		t.Fatalf("nats-server rejects nats.conf: %v", err)
	}
	opts.Host, opts.Port = "127.0.0.1", -1
	opts.HTTPHost, opts.HTTPPort = "", 0
	opts.Cluster = server.ClusterOpts{}
	opts.Routes = nil
	opts.StoreDir = t.TempDir()
	opts.PidFile = ""
	opts.NoSigs = true
	srv, err := server.NewServer(opts)
	if err != nil {
		t.Fatalf("nats-server: %v", err)
	}
	go srv.Start()
	t.Cleanup(srv.Shutdown)
	if !srv.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats-server did not start")
	}
	return srv.ClientURL()
}

// violations collects the permission errors the server sends a connection.
type violations struct {
	mu   sync.Mutex
	errs []string
}

func (v *violations) handler(_ *nats.Conn, _ *nats.Subscription, err error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.errs = append(v.errs, err.Error())
}

// waitFor polls until one collected error contains want.
func (v *violations) waitFor(t *testing.T, want string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		v.mu.Lock()
		for _, e := range v.errs {
			if strings.Contains(e, want) {
				v.mu.Unlock()
				return
			}
		}
		v.mu.Unlock()
		time.Sleep(20 * time.Millisecond)
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	t.Errorf("no server error containing %q; got %q", want, v.errs)
}

// userURL is url with user:password as userinfo.
func userURL(url, user, password string) string {
	return strings.Replace(url, "nats://", "nats://"+user+":"+password+"@", 1)
}

// The rendered NATS configuration is enforced by a real server: the worker
// and pingapi binaries, with the manifests' environment and the generated
// credentials, do their jobs; pingapi cannot read the change feed or delete
// streams, the worker cannot delete streams, and a client without
// credentials cannot connect. Neither program logs its password.
func TestNATSUsersCanDoTheirJobsAndNothingElse(t *testing.T) {
	if testing.Short() {
		t.Skip("starts nats-server and both binaries")
	}
	objs, dir := deployed(t)
	creds := natsAuthEnv(t, dir)
	url := natsServer(t, objs)

	// Nobody gets in without credentials, or with another user's password.
	for name, u := range map[string]string{
		"anonymous":      url,
		"wrong password": userURL(url, "worker", creds["pingapi-password"]),
		"unknown user":   userURL(url, "admin", creds["system-password"]),
	} {
		if nc, err := nats.Connect(u, nats.MaxReconnects(0)); err == nil {
			nc.Close()
			t.Errorf("%s: connected, want an authorization error", name)
		} else if !strings.Contains(strings.ToLower(err.Error()), "authorization violation") {
			t.Errorf("%s: %v, want an authorization violation", name, err)
		}
	}

	// The worker provisions its streams, consumers and lease bucket, and
	// pingapi publishes a job it does.
	workerAddr, pingapiAddr := freeAddr(t), freeAddr(t)
	worker := startWithManifestEnv(t, objs, "worker", map[string]string{
		"HTTP__ADDR":     workerAddr,
		"NATS__URL":      userURL(url, "worker", creds["worker-password"]),
		"NATS__REPLICAS": "1", // one server here
	})
	worker.waitStatus(t, "http://"+workerAddr+"/healthz/ready", 200, 30*time.Second)
	pingapi := startWithManifestEnv(t, objs, "pingapi", map[string]string{
		"HTTP__ADDR": pingapiAddr,
		"NATS__URL":  userURL(url, "pingapi", creds["pingapi-password"]),
	})
	pingapi.waitStatus(t, "http://"+pingapiAddr+"/healthz/ready", 200, 30*time.Second)
	resp, err := http.Post("http://"+pingapiAddr+"/pingpong/jobs", "application/json", strings.NewReader(`{"work":"10ms"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("POST /pingpong/jobs as pingapi = %d, want 202", resp.StatusCode)
	}
	// A change published with the worker's credentials reaches the feed.
	pub := exec.Command(hostBinary(t, "worker"), "publish", "--url", userURL(url, "worker", creds["worker-password"]),
		"changes.order-42", `{"v":1}`)
	if out, err := pub.CombinedOutput(); err != nil {
		t.Fatalf("worker publish changes.order-42: %v\n%s", err, out)
	}

	// Observe through the system's own state, as the worker user: the job
	// was acknowledged (the work queue is empty, the consumer's ack floor
	// moved) and a change-feed consumer acknowledged the change.
	wv := &violations{}
	wnc, err := nats.Connect(userURL(url, "worker", creds["worker-password"]), nats.ErrorHandler(wv.handler))
	if err != nil {
		t.Fatalf("connect as worker: %v", err)
	}
	defer wnc.Close()
	wjs, _ := jetstream.New(wnc)
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	waitUntil(t, ctx, "the job is acknowledged by jobs-worker", func() bool {
		c, err := wjs.Consumer(ctx, "JOBS", "jobs-worker")
		if err != nil {
			return false
		}
		info, err := c.Info(ctx)
		return err == nil && info.AckFloor.Stream >= 1 && info.NumAckPending == 0
	})
	waitUntil(t, ctx, "the change is acknowledged by a change-feed consumer", func() bool {
		s, err := wjs.Stream(ctx, "CHANGES")
		if err != nil {
			return false
		}
		for name := range s.ConsumerNames(ctx).Name() {
			c, err := s.Consumer(ctx, name)
			if err != nil {
				continue
			}
			if info, err := c.Info(ctx); err == nil && info.AckFloor.Stream >= 1 {
				return true
			}
		}
		return false
	})

	// pingapi may publish jobs and nothing more.
	pv := &violations{}
	pnc, err := nats.Connect(userURL(url, "pingapi", creds["pingapi-password"]), nats.ErrorHandler(pv.handler))
	if err != nil {
		t.Fatalf("connect as pingapi: %v", err)
	}
	defer pnc.Close()
	pjs, _ := jetstream.New(pnc)
	short := func() (context.Context, context.CancelFunc) { return context.WithTimeout(t.Context(), time.Second) }
	if _, err := pnc.Subscribe("changes.>", func(*nats.Msg) {}); err == nil {
		pv.waitFor(t, `Permissions Violation for Subscription to "changes.>"`)
	}
	c1, cancel1 := short()
	defer cancel1()
	if _, err := pjs.CreateOrUpdateConsumer(c1, "CHANGES", jetstream.ConsumerConfig{Durable: "spy"}); err == nil {
		t.Error("pingapi created a consumer on CHANGES")
	}
	pv.waitFor(t, `Permissions Violation for Publish to "$JS.API.CONSUMER.CREATE.CHANGES`)
	c2, cancel2 := short()
	defer cancel2()
	if err := pjs.DeleteStream(c2, "JOBS"); err == nil {
		t.Error("pingapi deleted the JOBS stream")
	}
	pv.waitFor(t, `Permissions Violation for Publish to "$JS.API.STREAM.DELETE.JOBS"`)
	c3, cancel3 := short()
	defer cancel3()
	if _, err := pjs.KeyValue(c3, "changefeed-leases"); err == nil {
		t.Error("pingapi opened the lease bucket")
	}
	if err := pnc.Publish("changes.order-42", []byte("forged")); err == nil {
		pv.waitFor(t, `Permissions Violation for Publish to "changes.order-42"`)
	}

	// The worker manages its streams but deletes none.
	c4, cancel4 := short()
	defer cancel4()
	if err := wjs.DeleteStream(c4, "CHANGES"); err == nil {
		t.Error("the worker deleted the CHANGES stream")
	}
	wv.waitFor(t, `Permissions Violation for Publish to "$JS.API.STREAM.DELETE.CHANGES"`)
	for _, stream := range []string{"JOBS", "DLQ", "CHANGES", "KV_changefeed-leases"} {
		if _, err := wjs.Stream(ctx, stream); err != nil {
			t.Errorf("stream %s: %v (want it provisioned and kept)", stream, err)
		}
	}

	// Every NATS client whose user may publish changes (the worker here; a
	// service added by docs/extending.md, such as its heartbeat, too) gets
	// one stored and acknowledged with its own credentials: its permissions
	// cover the stream's reply as well as the subject.
	for user, u := range natsUsers(t, objs) {
		if u.Permissions == nil || u.Permissions.Publish == nil || !slices.Contains(u.Permissions.Publish.Allow, "changes.>") {
			continue
		}
		nc, err := nats.Connect(userURL(url, user, creds[natsPasswordKey(t, objs, user)]))
		if err != nil {
			t.Errorf("connect as %s: %v", user, err)
			continue
		}
		js, _ := jetstream.New(nc)
		pctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
		ack, err := js.Publish(pctx, "changes."+user+"-probe", []byte(`{"probe":true}`))
		cancel()
		nc.Close()
		if err != nil || ack.Stream != "CHANGES" {
			t.Errorf("%s publishes a change: ack %+v, %v; want it stored in CHANGES", user, ack, err)
		}
	}

	// The system account is for operators: it answers server pings.
	snc, err := nats.Connect(userURL(url, "system", creds["system-password"]))
	if err != nil {
		t.Fatalf("connect as system: %v", err)
	}
	defer snc.Close()
	if _, err := snc.Request("$SYS.REQ.SERVER.PING", nil, 2*time.Second); err != nil {
		t.Errorf("system user: $SYS.REQ.SERVER.PING: %v", err)
	}

	// Passwords reach the programs only through NATS__URL; never the logs.
	for name, p := range map[string]*process{"worker": worker, "pingapi": pingapi} {
		for key, secret := range creds {
			if strings.Contains(p.output.String(), secret) {
				t.Errorf("%s's output contains the %s", name, key)
			}
		}
	}
}

// startWithManifestEnv runs app with the environment its Deployment gives
// it (Secrets from the generated overlay) plus overrides. A variable the
// binary does not declare yet is left out with a note, so this test stays
// about NATS; TestManifestEnvIsDeclaredByTheBinaries fails for it.
func startWithManifestEnv(t *testing.T, objs *objects, app string, overrides map[string]string) *process {
	t.Helper()
	c := container(t, &objs.deployment(t, app).Spec.Template.Spec, app)
	declared := helpOf(t, app).env
	var env []string
	for name, value := range kubeletEnv(t, objs, c, app+"-0") {
		if _, ok := overrides[name]; ok {
			continue
		}
		if strings.Contains(name, "__") && !slices.Contains(declared, name) {
			t.Logf("%s does not declare %s yet; left out here", app, name)
			continue
		}
		env = append(env, name+"="+value)
	}
	for name, value := range overrides {
		env = append(env, name+"="+value)
	}
	return start(t, hostBinary(t, app), env)
}

// waitUntil polls cond every 50ms until it holds or ctx ends.
func waitUntil(t *testing.T, ctx context.Context, what string, cond func() bool) {
	t.Helper()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatalf("timed out waiting until %s", what)
		case <-tick.C:
		}
	}
}

// natsUsers returns the NATS clients' users as the rendered nats.conf
// defines them, by name: one per Deployment that sets NATS__URL.
func natsUsers(t *testing.T, objs *objects) map[string]*server.User {
	t.Helper()
	opts, err := server.ProcessConfigFile(writeNATSConfig(t, objs, "nats-0"))
	if err != nil {
		t.Fatalf("nats-server rejects nats.conf: %v", err)
	}
	out := map[string]*server.User{}
	for _, app := range natsClients(objs) {
		i := slices.IndexFunc(opts.Users, func(u *server.User) bool { return u.Username == app })
		if i < 0 {
			t.Fatalf("nats.conf has no user %s", app)
		}
		out[app] = opts.Users[i]
	}
	return out
}

// natsPasswordKey is the nats-auth key of the password Deployment app sends
// in its NATS__URL.
func natsPasswordKey(t *testing.T, objs *objects, app string) string {
	t.Helper()
	c := container(t, &objs.deployment(t, app).Spec.Template.Spec, app)
	url, _ := envValue(c, "NATS__URL")
	m := natsURLForm.FindStringSubmatch(url)
	if m == nil {
		t.Fatalf("%s NATS__URL = %q, want nats://USER:$(VAR)@...", app, url)
	}
	ref := secretKeyRef(c.Env, m[2])
	if ref == nil {
		t.Fatalf("%s: %s does not come from a Secret key", app, m[2])
	}
	return ref.Key
}
