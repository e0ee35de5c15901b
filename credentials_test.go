package cos

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/registry-cos/cos/costest"
	"github.com/stretchr/testify/require"
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

func TestSessionTokenCredentials(t *testing.T) {
	srv := newServer(t, costest.Options{Credentials: []costest.Credential{
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
	srv := newServer(t, costest.Options{Credentials: []costest.Credential{
		{SecretID: "AKIDold", SecretKey: "oldkey", SessionToken: "old", Expiry: time.Now().Add(-time.Minute)},
	}})
	p := serverParameters(srv)
	p.SecretID, p.SecretKey, p.SessionToken = "AKIDold", "oldkey", "old"
	_, err := New(context.Background(), p)
	require.Error(t, err)
	require.Contains(t, err.Error(), "ExpiredToken")
}

func TestEnvironmentCredentials(t *testing.T) {
	srv := newServer(t, costest.Options{})
	t.Setenv(envSecretID, srv.SecretID)
	t.Setenv(envSecretKey, srv.SecretKey)
	d := newTestDriver(t, srv, func(p *Parameters) { p.SecretID, p.SecretKey = "", "" })
	exercise(t, d)

	t.Setenv(envSecretID, "")
	_, err := New(context.Background(), func() Parameters {
		p := serverParameters(srv)
		p.SecretID, p.SecretKey = "", ""
		return p
	}())
	require.ErrorContains(t, err, "no credentials")
}

// TestCVMRoleCredentials serves the instance metadata API: keys that are
// about to expire are renewed, and the emulator checks tokens and expiry.
func TestCVMRoleCredentials(t *testing.T) {
	now := time.Now()
	creds := []costest.Credential{
		{SecretID: "AKIDrole1", SecretKey: "rolekey1", SessionToken: "roletoken1", Expiry: now.Add(2 * time.Minute)},
		{SecretID: "AKIDrole2", SecretKey: "rolekey2", SessionToken: "roletoken2", Expiry: now.Add(time.Hour)},
	}
	srv := newServer(t, costest.Options{Credentials: creds})
	var fetches atomic.Int32
	metadata := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/latest/meta-data/cam/security-credentials/registry-role" {
			http.NotFound(w, r)
			return
		}
		c := creds[min(int(fetches.Add(1))-1, 1)]
		_ = json.NewEncoder(w).Encode(map[string]any{
			"TmpSecretId": c.SecretID, "TmpSecretKey": c.SecretKey, "Token": c.SessionToken,
			"ExpiredTime": c.Expiry.Unix(), "Code": "Success",
		})
	}))
	t.Cleanup(metadata.Close)

	d := newTestDriver(t, srv, func(p *Parameters) {
		p.SecretID, p.SecretKey = "", ""
		p.CVMRole, p.CVMMetadataURL = "registry-role", metadata.URL
	})
	// The first keys expire within the renewal margin: the next request renews.
	exercise(t, d)
	require.EqualValues(t, 2, fetches.Load(), "credentials fetched, then renewed once")
	exercise(t, d)
	require.EqualValues(t, 2, fetches.Load(), "valid credentials are cached")

	p := serverParameters(srv)
	p.SecretID, p.SecretKey = "", ""
	p.CVMRole, p.CVMMetadataURL = "unbound-role", metadata.URL
	_, err := New(context.Background(), p)
	require.ErrorContains(t, err, "is the role bound to this instance")
}
