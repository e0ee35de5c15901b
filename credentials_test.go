package cos

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"
	cossdk "github.com/tencentyun/cos-go-sdk-v5"

	"github.com/registry-cos/cos/costest"
	"github.com/registry-cos/cos/internal/testenv"
)

// exercise writes, reads and presigns through d.
func exercise(t *testing.T, d *Driver) {
	t.Helper()
	ctx := context.Background()
	require.NoError(t, d.PutContent(ctx, "/cred/file", []byte("data")))
	got, err := d.GetContent(ctx, "/cred/file")
	require.NoError(t, err)
	require.Equal(t, "data", string(got))
	r, _ := httpRequest(http.MethodGet)
	u, err := d.RedirectURL(r, "/cred/file")
	require.NoError(t, err)
	resp, err := httpDo(http.MethodGet, u)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode, "presigned GET %s", u)
}

// chainEnvironment lists every variable the credential chain reads.
var chainEnvironment = []string{
	envSecretID, envSecretKey, envSessionToken, envSecurityToken, envCredentialsFile,
	envTKERoleARN, envTKETokenFile, envTKEProviderID, envTKERegion, "HOME",
}

// isolateChain unsets every variable of the chain for one test (restored
// after it) and points HOME at an empty directory, so that nothing of the
// machine running the tests joins the chain.
func isolateChain(t *testing.T) {
	t.Helper()
	for _, name := range chainEnvironment {
		old, had := os.LookupEnv(name)
		os.Unsetenv(name)
		t.Cleanup(func() {
			if had {
				os.Setenv(name, old)
			} else {
				os.Unsetenv(name)
			}
		})
	}
	os.Setenv("HOME", t.TempDir())
}

// Identity fixtures of the emulator.
const (
	tkeRoleARN    = "qcs::cam::uin/100000000001:roleName/registry-tke"
	tkeProviderID = "cls-test1234"
	crossRoleARN  = "qcs::cam::uin/200000000002:roleName/registry-cross"
	instanceRole  = "registry-cvm"
)

// identityEmulator starts an emulator with STS and the metadata service,
// the TKE and cross-account roles, and the default key plus "AKIDenv" and
// "AKIDprofile".
func identityEmulator(t *testing.T, opts costest.IdentityOptions) *costest.Server {
	t.Helper()
	if opts.Roles == nil {
		opts.Roles = []costest.Role{
			{ARN: tkeRoleARN, ProviderID: tkeProviderID, WebIdentityTokens: []string{"tke-token-1"}},
			{ARN: crossRoleARN, AssumableBy: []string{costest.DefaultSecretID}},
		}
	}
	return testenv.StartEmulator(t, costest.Options{
		Credentials: []costest.Credential{
			{SecretID: costest.DefaultSecretID, SecretKey: costest.DefaultSecretKey},
			{SecretID: "AKIDenv", SecretKey: "envkey"},
			{SecretID: "AKIDenvtemp", SecretKey: "envtempkey", SessionToken: "env-token", Expiry: time.Now().Add(time.Hour)},
			{SecretID: "AKIDprofile", SecretKey: "profilekey"},
			{SecretID: "AKIDother", SecretKey: "otherkey"},
		},
		Identity: &opts,
	})
}

// chainParameters address srv with no credentials configured; the
// metadata service and STS are the emulator's.
func chainParameters(srv *costest.Server) Parameters {
	p := serverParameters(srv)
	p.SecretID, p.SecretKey = "", ""
	p.CVMMetadataURL, p.STSEndpoint = srv.MetadataURL, srv.STSURL
	return p
}

// writeProfileFile writes a profile file with a default and an "other"
// section and names it in TENCENTCLOUD_CREDENTIALS_FILE.
func writeProfileFile(t *testing.T) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "credentials")
	content := "# written by tccli\n[default]\nsecret_id = AKIDprofile\nsecret_key = profilekey\n\n[other]\nsecret_id=AKIDother\nsecret_key=otherkey\n"
	require.NoError(t, os.WriteFile(path, []byte(content), 0o600))
	os.Setenv(envCredentialsFile, path)
}

// setTKEEnvironment sets the variables of TKE pod identity, with the web
// identity token in a file; it returns the file.
func setTKEEnvironment(t *testing.T, token string) string {
	t.Helper()
	file := filepath.Join(t.TempDir(), "token")
	require.NoError(t, os.WriteFile(file, []byte(token+"\n"), 0o600))
	os.Setenv(envTKERoleARN, tkeRoleARN)
	os.Setenv(envTKETokenFile, file)
	os.Setenv(envTKEProviderID, tkeProviderID)
	os.Setenv(envTKERegion, "ap-guangzhou")
	return file
}

// TestCredentialChainOrder sets up every link of the chain below the one
// under test, and checks that the first present link is the one used, that
// it works (writes, reads, presigned URLs) and that its name carries no
// secret.
func TestCredentialChainOrder(t *testing.T) {
	links := []struct {
		name string
		// setup makes this link and every lower one present.
		setup      func(t *testing.T, p *Parameters)
		wantSource string
		// identityRequests are the STS and metadata requests expected.
		identityRequests map[string]int64
	}{
		{"configuration key pair", func(t *testing.T, p *Parameters) {
			p.SecretID, p.SecretKey = costest.DefaultSecretID, costest.DefaultSecretKey
			os.Setenv(envSecretID, "AKIDenv")
			os.Setenv(envSecretKey, "envkey")
		}, "configuration (secretid, secretkey)", nil},
		{"configuration cvmrole", func(t *testing.T, p *Parameters) {
			p.CVMRole = instanceRole
			os.Setenv(envSecretID, "AKIDenv")
			os.Setenv(envSecretKey, "envkey")
		}, "CVM role registry-cvm (named by cvmrole)", map[string]int64{costest.OpMetadataCredentials: 1}},
		{"environment", func(t *testing.T, p *Parameters) {
			os.Setenv(envSecretID, "AKIDenv")
			os.Setenv(envSecretKey, "envkey")
		}, "environment (TENCENTCLOUD_SECRET_ID, TENCENTCLOUD_SECRET_KEY)", nil},
		{"environment with TENCENTCLOUD_SECURITY_TOKEN", func(t *testing.T, p *Parameters) {
			os.Setenv(envSecretID, "AKIDenvtemp")
			os.Setenv(envSecretKey, "envtempkey")
			os.Setenv(envSecurityToken, "env-token")
		}, "environment (TENCENTCLOUD_SECRET_ID, TENCENTCLOUD_SECRET_KEY, TENCENTCLOUD_SECURITY_TOKEN)", nil},
		{"environment with TENCENTCLOUD_SESSION_TOKEN", func(t *testing.T, p *Parameters) {
			os.Setenv(envSecretID, "AKIDenvtemp")
			os.Setenv(envSecretKey, "envtempkey")
			os.Setenv(envSessionToken, "env-token")
		}, "environment (TENCENTCLOUD_SECRET_ID, TENCENTCLOUD_SECRET_KEY, TENCENTCLOUD_SESSION_TOKEN)", nil},
		{"profile file", func(t *testing.T, p *Parameters) {}, "profile file * [default]", nil},
		{"profile file, named profile", func(t *testing.T, p *Parameters) { p.Profile = "other" }, "profile file * [other]", nil},
		{"TKE pod identity", func(t *testing.T, p *Parameters) {
			os.Unsetenv(envCredentialsFile)
		}, "TKE pod identity (role " + tkeRoleARN + ", provider " + tkeProviderID + ")", map[string]int64{costest.OpAssumeRoleWithWebIdentity: 1}},
		{"CVM role listed by the metadata service", func(t *testing.T, p *Parameters) {
			os.Unsetenv(envCredentialsFile)
			for _, n := range []string{envTKERoleARN, envTKETokenFile, envTKEProviderID, envTKERegion} {
				os.Unsetenv(n)
			}
		}, "CVM role registry-cvm (listed by the instance metadata service)", map[string]int64{costest.OpMetadataRoleList: 1, costest.OpMetadataCredentials: 1}},
	}
	for _, link := range links {
		t.Run(link.name, func(t *testing.T) {
			isolateChain(t)
			srv := identityEmulator(t, costest.IdentityOptions{InstanceRole: instanceRole})
			// Every lower link is present: the profile file, TKE pod
			// identity and the instance role (the emulator's).
			writeProfileFile(t)
			setTKEEnvironment(t, "tke-token-1")
			p := chainParameters(srv)
			link.setup(t, &p)
			d, err := New(context.Background(), p)
			require.NoError(t, err)
			got := d.CredentialSource()
			if prefix, suffix, wild := strings.Cut(link.wantSource, "*"); wild {
				require.True(t, strings.HasPrefix(got, prefix) && strings.HasSuffix(got, suffix), "source %q, want %q", got, link.wantSource)
			} else {
				require.Equal(t, link.wantSource, got)
			}
			for _, secret := range []string{costest.DefaultSecretKey, "envkey", "envtempkey", "env-token", "profilekey", "otherkey", "tke-token-1"} {
				require.NotContains(t, got, secret, "the source's name shows a secret")
			}
			exercise(t, d)
			stats := srv.Stats()
			for _, op := range []string{costest.OpAssumeRole, costest.OpAssumeRoleWithWebIdentity, costest.OpMetadataRoleList, costest.OpMetadataCredentials} {
				require.Equal(t, link.identityRequests[op], stats.Count(op), "%s requests", op)
			}
		})
	}

	t.Run("nothing present", func(t *testing.T) {
		isolateChain(t)
		srv := identityEmulator(t, costest.IdentityOptions{}) // no instance role: the listing is 404
		_, err := New(context.Background(), chainParameters(srv))
		require.ErrorContains(t, err, "cos: no credentials")
		require.Equal(t, int64(1), srv.Stats().Count(costest.OpMetadataRoleList), "the chain's last link asks the metadata service")
	})
}

// TestCredentialChainErrors: a link that is present but broken stops the
// chain with a sentence that names it, rather than falling through.
func TestCredentialChainErrors(t *testing.T) {
	cases := []struct {
		name  string
		setup func(t *testing.T, p *Parameters)
		want  []string
	}{
		{"secret id without key in the environment", func(t *testing.T, p *Parameters) {
			os.Setenv(envSecretID, "AKIDenv")
		}, []string{"TENCENTCLOUD_SECRET_ID is set but TENCENTCLOUD_SECRET_KEY is not"}},
		{"named profile without a file", func(t *testing.T, p *Parameters) { p.Profile = "other" }, []string{"cannot read the profile file"}},
		{"profile missing from the file", func(t *testing.T, p *Parameters) {
			writeProfileFile(t)
			p.Profile = "staging"
		}, []string{"has no [staging] section"}},
		{"TKE half configured", func(t *testing.T, p *Parameters) {
			os.Setenv(envTKERoleARN, tkeRoleARN)
		}, []string{"TKE pod identity is half configured", "TKE_WEB_IDENTITY_TOKEN_FILE, TKE_PROVIDER_ID, TKE_REGION not set"}},
		{"TKE token refused", func(t *testing.T, p *Parameters) { setTKEEnvironment(t, "stolen-token") },
			[]string{"credentials from TKE pod identity (role " + tkeRoleARN, "InvalidParameter.WebIdentityTokenError"}},
		{"TKE token file unreadable", func(t *testing.T, p *Parameters) {
			setTKEEnvironment(t, "tke-token-1")
			os.Setenv(envTKETokenFile, filepath.Join(t.TempDir(), "missing"))
		}, []string{"TKE pod identity", "cannot read the web identity token"}},
		{"role not assumable by the caller", func(t *testing.T, p *Parameters) {
			p.SecretID, p.SecretKey = "AKIDother", "otherkey"
			p.RoleARN = crossRoleARN
		}, []string{"role " + crossRoleARN + " assumed with configuration", "UnauthorizedOperation"}},
		{"unknown role", func(t *testing.T, p *Parameters) {
			p.SecretID, p.SecretKey = costest.DefaultSecretID, costest.DefaultSecretKey
			p.RoleARN = "qcs::cam::uin/1:roleName/nobody"
		}, []string{"ResourceNotFound.RoleNotFound"}},
		{"AssumeRole with a wrong secret key", func(t *testing.T, p *Parameters) {
			p.SecretID, p.SecretKey = costest.DefaultSecretID, "wrong-key"
			p.RoleARN = crossRoleARN
		}, []string{"AuthFailure.SignatureFailure"}},
		{"unbound CVM role", func(t *testing.T, p *Parameters) { p.CVMRole = "unbound-role" }, []string{"is the role bound to this instance"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			isolateChain(t)
			srv := identityEmulator(t, costest.IdentityOptions{InstanceRole: instanceRole})
			p := chainParameters(srv)
			tc.setup(t, &p)
			_, err := New(context.Background(), p)
			require.Error(t, err)
			for _, want := range tc.want {
				require.ErrorContains(t, err, want)
			}
			require.NotContains(t, err.Error(), "wrong-key")
		})
	}
}

// TestAssumeRoleOnTop assumes rolearn with the keys of the chain: a static
// key pair, and TKE pod identity (temporary keys signing AssumeRole with
// their token).
func TestAssumeRoleOnTop(t *testing.T) {
	t.Run("over a key pair", func(t *testing.T) {
		isolateChain(t)
		srv := identityEmulator(t, costest.IdentityOptions{})
		p := chainParameters(srv)
		p.SecretID, p.SecretKey = costest.DefaultSecretID, costest.DefaultSecretKey
		p.RoleARN, p.RoleSessionName = crossRoleARN, "ci-session"
		d, err := New(context.Background(), p)
		require.NoError(t, err)
		require.Equal(t, "role "+crossRoleARN+" assumed with configuration (secretid, secretkey)", d.CredentialSource())
		exercise(t, d)
		require.Equal(t, int64(1), srv.Stats().Count(costest.OpAssumeRole))
	})
	t.Run("over TKE pod identity", func(t *testing.T) {
		isolateChain(t)
		srv := identityEmulator(t, costest.IdentityOptions{Roles: []costest.Role{
			{ARN: tkeRoleARN, ProviderID: tkeProviderID, WebIdentityTokens: []string{"tke-token-1"}},
			{ARN: crossRoleARN}, // assumable by any key, temporary ones included
		}})
		setTKEEnvironment(t, "tke-token-1")
		p := chainParameters(srv)
		p.RoleARN = crossRoleARN
		d, err := New(context.Background(), p)
		require.NoError(t, err)
		require.Contains(t, d.CredentialSource(), "assumed with TKE pod identity")
		exercise(t, d)
		stats := srv.Stats()
		require.Equal(t, int64(1), stats.Count(costest.OpAssumeRoleWithWebIdentity))
		require.Equal(t, int64(1), stats.Count(costest.OpAssumeRole))
	})
}

// tkeDriver starts an emulator whose keys live lifetime and a driver on
// TKE pod identity alone; it returns the token file too.
func tkeDriver(t *testing.T, lifetime time.Duration) (*costest.Server, *Driver, string) {
	t.Helper()
	isolateChain(t)
	srv := identityEmulator(t, costest.IdentityOptions{Lifetime: lifetime})
	tokenFile := setTKEEnvironment(t, "tke-token-1")
	d, err := New(context.Background(), chainParameters(srv))
	require.NoError(t, err)
	return srv, d, tokenFile
}

// TestTKETokenRotatedAndKeysRenewed runs the driver for several lifetimes
// of its keys on TKE pod identity while the token file is rotated (the old
// token revoked at once): every operation succeeds, so no expired key was
// ever used (the emulator answers ExpiredToken to one) and every renewal
// after the rotation read the new token.
func TestTKETokenRotatedAndKeysRenewed(t *testing.T) {
	if testing.Short() {
		t.Skip("runs for several key lifetimes")
	}
	const lifetime = 2 * time.Second
	srv, d, tokenFile := tkeDriver(t, lifetime)

	ctx := context.Background()
	start := time.Now()
	rotated := false
	for i := 0; time.Since(start) < 3*lifetime; i++ {
		if !rotated && time.Since(start) > lifetime/2 {
			require.NoError(t, os.WriteFile(tokenFile, []byte("tke-token-2"), 0o600))
			require.True(t, srv.SetWebIdentityTokens(tkeRoleARN, "tke-token-2"))
			rotated = true
		}
		require.NoError(t, d.PutContent(ctx, "/renew/file", []byte(fmt.Sprint(i))), "operation %d, %v after start", i, time.Since(start))
		time.Sleep(20 * time.Millisecond)
	}
	elapsed := time.Since(start)
	fetches := srv.Stats().Count(costest.OpAssumeRoleWithWebIdentity)
	// One fetch at start, then one per half lifetime at most.
	require.GreaterOrEqual(t, fetches, int64(3), "keys renewed over %v", elapsed)
	require.LessOrEqual(t, fetches, int64(elapsed/(lifetime/2))+2, "renewals over %v", elapsed)
}

// TestRenewalUnderSlowSTS: with keys due for renewal and an STS that takes
// seconds to answer, ten concurrent requests cause one renewal and all
// complete with the current keys before STS answers.
func TestRenewalUnderSlowSTS(t *testing.T) {
	const lifetime = 4 * time.Second
	srv, d, _ := tkeDriver(t, lifetime)
	srv.SetIdentityFaults(costest.IdentityFaults{Latency: 3 * time.Second})
	time.Sleep(lifetime/2 + 100*time.Millisecond) // into the renewal window, keys still valid

	errs := make(chan error, 10)
	for i := range 10 {
		go func() { errs <- d.PutContent(context.Background(), fmt.Sprintf("/slow/%d", i), []byte("x")) }()
	}
	for range 10 {
		require.NoError(t, <-errs)
	}
	stats := srv.Stats()
	require.Equal(t, int64(1), stats.Status[costest.OpAssumeRoleWithWebIdentity+" 200"], "the requests completed before the renewal was answered")
	// The renewal runs beside the requests: on a loaded machine it may
	// reach STS only after they are done. Wait for it to arrive.
	require.Eventually(t, func() bool { return srv.Stats().Count(costest.OpAssumeRoleWithWebIdentity) >= 2 },
		30*time.Second, 10*time.Millisecond, "the renewal reached STS")
	require.Equal(t, int64(2), srv.Stats().Count(costest.OpAssumeRoleWithWebIdentity), "the first fetch and one renewal")
}

// TestRenewalUnderFailingSTS: STS fails every renewal. Requests sign with
// the current keys while they are valid; then they fail at once with an
// error naming the source and STS's answer, never with an expired key and
// never hanging; failed renewals back off.
func TestRenewalUnderFailingSTS(t *testing.T) {
	const lifetime = 3 * time.Second
	srv, d, _ := tkeDriver(t, lifetime)
	srv.SetIdentityFaults(costest.IdentityFaults{ErrorRate: 1})
	started := time.Now()

	var failure error
	for time.Since(started) < 2*lifetime {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		err := d.PutContent(ctx, "/failing/file", []byte("x"))
		cancel()
		if err != nil {
			failure = err
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	require.Error(t, failure, "requests kept working after the keys expired")
	require.NotErrorIs(t, failure, context.DeadlineExceeded, "a request waited for keys instead of failing")
	require.ErrorContains(t, failure, "credentials from TKE pod identity")
	require.ErrorContains(t, failure, "InternalError.SystemError")
	require.NotContains(t, failure.Error(), "ExpiredToken", "an expired key was sent to COS")
	require.Greater(t, time.Since(started), lifetime/2, "requests failed while the keys were still valid")
	fetches := srv.Stats().Count(costest.OpAssumeRoleWithWebIdentity)
	// Renewals started at lifetime/2, with backoff from 1 s: a handful.
	require.LessOrEqual(t, fetches, int64(6), "failed renewals back off")

	// STS recovers: the next attempt after the backoff brings keys back.
	srv.SetIdentityFaults(costest.IdentityFaults{})
	require.Eventually(t, func() bool {
		return d.PutContent(context.Background(), "/failing/file", []byte("x")) == nil
	}, 10*time.Second, 100*time.Millisecond, "renewal resumes after STS recovers")
}

// TestCVMRoleCredentials: a named instance role works through the
// emulator's metadata service, and its keys are renewed.
func TestCVMRoleCredentials(t *testing.T) {
	isolateChain(t)
	srv := identityEmulator(t, costest.IdentityOptions{InstanceRole: instanceRole, Lifetime: 2 * time.Second})
	p := chainParameters(srv)
	p.CVMRole = instanceRole
	d, err := New(context.Background(), p)
	require.NoError(t, err)
	exercise(t, d)
	time.Sleep(1500 * time.Millisecond) // past the renewal point
	exercise(t, d)
	require.Eventually(t, func() bool { return srv.Stats().Count(costest.OpMetadataCredentials) >= 2 }, 5*time.Second, 20*time.Millisecond)
	require.Zero(t, srv.Stats().Count(costest.OpMetadataRoleList), "a named role is not looked up")
}

func TestSessionTokenCredentials(t *testing.T) {
	srv := testenv.StartEmulator(t, costest.Options{Credentials: []costest.Credential{
		{SecretID: "AKIDtemp", SecretKey: "tempkey", SessionToken: "token-1", Expiry: time.Now().Add(time.Hour)},
	}})
	d := newTestDriver(t, srv, func(p *Parameters) {
		p.SecretID, p.SecretKey, p.SessionToken = "AKIDtemp", "tempkey", "token-1"
	})
	exercise(t, d)

	p := serverParameters(srv)
	p.SecretID, p.SecretKey, p.SessionToken = "AKIDtemp", "tempkey", "wrong-token"
	_, err := New(context.Background(), p)
	require.Error(t, err, "a wrong session token is refused")
}

func TestExpiredTokenIsReported(t *testing.T) {
	srv := testenv.StartEmulator(t, costest.Options{Credentials: []costest.Credential{
		{SecretID: "AKIDold", SecretKey: "oldkey", SessionToken: "old", Expiry: time.Now().Add(-time.Minute)},
	}})
	p := serverParameters(srv)
	p.SecretID, p.SecretKey, p.SessionToken = "AKIDold", "oldkey", "old"
	_, err := New(context.Background(), p)
	require.Error(t, err)
	require.Contains(t, err.Error(), "ExpiredToken")
	require.Contains(t, err.Error(), "credentials from configuration (secretid, secretkey, sessiontoken)")
}

// TestRenewalRefusesExpiredKeys: keys that arrive already expired (a
// clock off on either side) are never used; the error says why.
func TestRenewalRefusesExpiredKeys(t *testing.T) {
	fetches := 0
	_, err := newRenewingCredentials(context.Background(), "test source", func(context.Context) (cossdk.Credential, time.Time, error) {
		fetches++
		return cossdk.Credential{SecretID: "AKIDstale", SecretKey: "stale"}, time.Now().Add(-time.Second), nil
	})
	require.ErrorContains(t, err, "credentials from test source")
	require.ErrorContains(t, err, "is this machine's clock right")
	require.Equal(t, 1, fetches)
}

// TestCredentialSourcesDoNotFormatSecrets: printing a source, or the
// driver holding it, in any verb shows its name, not its keys.
func TestCredentialSourcesDoNotFormatSecrets(t *testing.T) {
	isolateChain(t)
	srv := identityEmulator(t, costest.IdentityOptions{})
	setTKEEnvironment(t, "tke-token-1")
	d, err := New(context.Background(), chainParameters(srv))
	require.NoError(t, err)
	current, err := internal(d).credentials.credential(context.Background())
	require.NoError(t, err)
	static := staticCredentials{current, "test"}
	for _, v := range []any{internal(d).credentials, static, internal(d)} {
		for _, verb := range []string{"%v", "%+v", "%#v"} {
			out := fmt.Sprintf(verb, v)
			require.NotContains(t, out, current.SecretKey, "%s of %T", verb, v)
			require.NotContains(t, out, current.SessionToken, "%s of %T", verb, v)
		}
	}
}

// TestCVMRenewalUnderSlowFailingMetadata is the case of the review: ten
// concurrent requests, keys due for renewal, a metadata service that is
// slow and fails. One fetch is made, and every request completes with the
// current keys without waiting for it.
func TestCVMRenewalUnderSlowFailingMetadata(t *testing.T) {
	isolateChain(t)
	const lifetime = 4 * time.Second
	srv := identityEmulator(t, costest.IdentityOptions{InstanceRole: instanceRole, Lifetime: lifetime})
	p := chainParameters(srv)
	p.CVMRole = instanceRole
	d, err := New(context.Background(), p)
	require.NoError(t, err)
	srv.SetIdentityFaults(costest.IdentityFaults{Latency: 2 * time.Second, ErrorRate: 1})
	time.Sleep(lifetime/2 + 100*time.Millisecond) // into the renewal window

	errs := make(chan error, 10)
	for i := range 10 {
		go func() { errs <- d.PutContent(context.Background(), fmt.Sprintf("/cvm/%d", i), []byte("x")) }()
	}
	for range 10 {
		require.NoError(t, <-errs)
	}
	stats := srv.Stats()
	require.Equal(t, int64(2), stats.Count(costest.OpMetadataCredentials), "the first fetch and one renewal")
	require.Zero(t, stats.Status[costest.OpMetadataCredentials+" 500"], "the requests completed before the slow renewal failed")
}

// fakeClock is a clock tests step by hand.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) step(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// waitRenewalIdle waits until no fetch of r is in flight.
func waitRenewalIdle(r *renewingCredentials) {
	for {
		r.mu.Lock()
		idle := r.renewing == nil
		r.mu.Unlock()
		if idle {
			return
		}
		time.Sleep(time.Millisecond)
	}
}

// TestRenewalBacksOff steps a clock through failed renewals: one fetch per
// backoff period however many requests sign, the current keys used until
// shortly before they expire, then an immediate error naming the source,
// and recovery once the source answers again.
func TestRenewalBacksOff(t *testing.T) {
	clock := &fakeClock{now: time.Unix(1_800_000_000, 0)}
	var fetches atomic.Int32
	var failing atomic.Bool
	failing.Store(true)
	r := &renewingCredentials{name: "test source", now: clock.Now, fetch: func(context.Context) (cossdk.Credential, time.Time, error) {
		fetches.Add(1)
		if failing.Load() {
			return cossdk.Credential{}, time.Time{}, fmt.Errorf("STS is down")
		}
		return cossdk.Credential{SecretID: "AKIDnew", SecretKey: "new"}, clock.Now().Add(time.Hour), nil
	}}
	old := cossdk.Credential{SecretID: "AKIDold", SecretKey: "old"}
	r.current, r.obtained, r.expiry = old, clock.Now(), clock.Now().Add(time.Hour)
	sign := func() (cossdk.Credential, error) {
		t.Helper()
		cred, err := r.credential(context.Background())
		waitRenewalIdle(r)
		return cred, err
	}

	clock.step(55*time.Minute + time.Second) // inside the 5-minute renewal window
	for range 10 {
		cred, err := sign()
		require.NoError(t, err)
		require.Equal(t, old, cred, "the current keys while they are valid")
	}
	require.EqualValues(t, 1, fetches.Load(), "ten requests, one fetch")
	clock.step(400 * time.Millisecond) // first backoff: 0.5 s to 1 s
	_, _ = sign()
	require.EqualValues(t, 1, fetches.Load(), "no fetch within the backoff")
	clock.step(700 * time.Millisecond)
	_, _ = sign()
	require.EqualValues(t, 2, fetches.Load(), "a fetch after the backoff")
	clock.step(900 * time.Millisecond) // second backoff: 1 s to 2 s
	_, _ = sign()
	require.EqualValues(t, 2, fetches.Load(), "the backoff grew")
	clock.step(1200 * time.Millisecond)
	_, _ = sign()
	require.EqualValues(t, 3, fetches.Load())

	clock.step(4*time.Minute + 40*time.Second) // 30 s or less before expiry
	before := fetches.Load()
	_, err := sign()
	require.ErrorContains(t, err, "credentials from test source: the keys expired and renewing them failed: STS is down")
	require.LessOrEqual(t, fetches.Load(), before+1, "at most one fetch for the failing request")

	failing.Store(false)
	clock.step(2 * time.Minute) // past any backoff
	cred, err := sign()
	require.NoError(t, err)
	require.Equal(t, "AKIDnew", cred.SecretID, "renewed keys once the source answers")
}

func TestCredentialRefreshFailuresCounted(t *testing.T) {
	srv := testenv.StartEmulator(t, costest.Options{})
	metadata := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "metadata service down", http.StatusInternalServerError)
	}))
	t.Cleanup(metadata.Close)
	before := testutil.ToFloat64(defaultMetrics.credentialFailures)
	p := serverParameters(srv)
	p.SecretID, p.SecretKey = "", ""
	p.CVMRole, p.CVMMetadataURL = "registry-role", metadata.URL
	_, err := New(context.Background(), p)
	require.Error(t, err)
	require.Greater(t, testutil.ToFloat64(defaultMetrics.credentialFailures), before,
		"registry_cos_credential_refresh_failures_total counts the failed fetch")
}

// TestRenewalWhenTheSourceRepeatsItsKey: a source that hands back the key
// it already gave (a metadata service caching it) does not count as a
// renewal: the key's margins stay those of its whole hour, so it is not
// used in its last 30 s (before, each repeat was taken as a fresh start
// and the key was signed with until moments before it expired, when any
// clock skew gives ExpiredToken), and fetches back off rather than follow
// every request into the expiry.
func TestRenewalWhenTheSourceRepeatsItsKey(t *testing.T) {
	clock := &fakeClock{now: time.Unix(1_800_000_000, 0)}
	key := cossdk.Credential{SecretID: "AKIDcached", SecretKey: "cached", SessionToken: "token"}
	expiry := clock.Now().Add(time.Hour)
	var fetches atomic.Int32
	r := &renewingCredentials{name: "test source", now: clock.Now, fetch: func(context.Context) (cossdk.Credential, time.Time, error) {
		fetches.Add(1)
		return key, expiry, nil
	}}
	_, err := r.credential(context.Background())
	require.NoError(t, err)
	waitRenewalIdle(r)

	clock.step(55 * time.Minute) // the renewal window opens
	for clock.Now().Before(expiry.Add(-expirySlack)) {
		cred, err := r.credential(context.Background())
		waitRenewalIdle(r)
		require.NoError(t, err)
		require.Equal(t, key, cred)
		clock.step(time.Second)
	}
	require.LessOrEqual(t, fetches.Load(), int32(1+12), "fetches in the last 5 minutes: one per backoff")
	clock.step(time.Second) // 29 s before the expiry
	_, err = r.credential(context.Background())
	waitRenewalIdle(r)
	require.ErrorContains(t, err, "handed back the keys it gave before", "the key is not used in its last 30 s")
}

// TestRedirectURLsLastNoLongerThanTheirKey: a redirect URL promises no
// more than the temporary key that signs it has left (COS refuses the URL
// once the key expires): keys that live shorter than redirectexpiry give
// shorter URLs; keys that would expire first are renewed before signing,
// once they are past half their life, and if that fails the URL is cut to
// what they have left.
func TestRedirectURLsLastNoLongerThanTheirKey(t *testing.T) {
	t.Run("keys shorter than redirectexpiry", func(t *testing.T) {
		const lifetime = 15 * time.Minute
		_, d, _ := tkeDriver(t, lifetime)
		require.NoError(t, d.PutContent(context.Background(), "/blob", []byte("0123456789")))
		r, _ := httpRequest(http.MethodGet)
		u, err := d.RedirectURL(r, "/blob")
		require.NoError(t, err)
		parsed, err := url.Parse(u)
		require.NoError(t, err)
		var start, end int64
		_, err = fmt.Sscanf(parsed.Query().Get("q-sign-time"), "%d;%d", &start, &end)
		require.NoError(t, err, "q-sign-time of %s", u)
		require.LessOrEqual(t, time.Duration(end-start)*time.Second, lifetime-expirySlack, "the URL outlives its key")
		resp, err := httpDo(http.MethodGet, u)
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, resp.StatusCode)
	})

	clock := &fakeClock{now: time.Unix(1_800_000_000, 0)}
	var fetches atomic.Int32
	var failing atomic.Bool
	r := &renewingCredentials{name: "test source", now: clock.Now, fetch: func(context.Context) (cossdk.Credential, time.Time, error) {
		n := fetches.Add(1)
		if failing.Load() {
			return cossdk.Credential{}, time.Time{}, fmt.Errorf("STS is down")
		}
		return cossdk.Credential{SecretID: fmt.Sprintf("AKID%d", n), SecretKey: "k"}, clock.Now().Add(time.Hour), nil
	}}
	ctx := context.Background()
	left, err := r.validFor(ctx, DefaultRedirectExpiry)
	require.NoError(t, err)
	require.Equal(t, DefaultRedirectExpiry, left, "a fresh key lasts the URL")

	clock.step(45 * time.Minute) // 15 minutes left: less than the URL's 20
	left, err = r.validFor(ctx, DefaultRedirectExpiry)
	require.NoError(t, err)
	require.Equal(t, DefaultRedirectExpiry, left, "renewed before signing")
	require.EqualValues(t, 2, fetches.Load())
	cred, err := r.credential(ctx)
	require.NoError(t, err)
	require.Equal(t, "AKID2", cred.SecretID, "the URL is signed with the new key")

	failing.Store(true)
	clock.step(45 * time.Minute)
	left, err = r.validFor(ctx, DefaultRedirectExpiry)
	waitRenewalIdle(r)
	require.NoError(t, err)
	require.Equal(t, 15*time.Minute-expirySlack, left, "renewal failed: the URL gets what the key has left")
}
