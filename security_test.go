package cos

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	"github.com/stretchr/testify/require"

	"github.com/registry-cos/cos/costest"
	"github.com/registry-cos/cos/internal/testenv"
)

// TestTLSCertificatesAreChecked: an endpoint with a certificate the system
// does not trust is refused, unless skipverify is set, which is logged.
func TestTLSCertificatesAreChecked(t *testing.T) {
	h, err := costest.NewHandler(costest.Options{})
	require.NoError(t, err)
	t.Cleanup(func() { h.Close() })
	ts := httptest.NewTLSServer(h)
	t.Cleanup(ts.Close)
	p := DefaultParameters()
	p.SecretID, p.SecretKey = costest.DefaultSecretID, costest.DefaultSecretKey
	p.Bucket, p.Region, p.Endpoint = costest.DefaultBucket, costest.DefaultRegion, ts.URL
	p.MaxRetries = 0

	_, err = New(context.Background(), p)
	require.ErrorContains(t, err, "certificate")

	var out bytes.Buffer
	old := logrus.StandardLogger().Out
	logrus.StandardLogger().SetOutput(&out)
	t.Cleanup(func() { logrus.StandardLogger().SetOutput(old) })
	p.SkipVerify = true
	d, err := New(context.Background(), p)
	require.NoError(t, err)
	require.NoError(t, d.PutContent(context.Background(), "/tls", []byte("ok")))
	require.Contains(t, out.String(), "skipverify")
}

// TestPresignedURLsExpire: a redirect URL works until redirectexpiry,
// and is refused after.
func TestPresignedURLsExpire(t *testing.T) {
	srv := testenv.StartEmulator(t, costest.Options{})
	d := newTestDriver(t, srv, func(p *Parameters) { p.RedirectExpiry = time.Second })
	require.NoError(t, d.PutContent(context.Background(), "/blob", []byte("data")))
	r, _ := http.NewRequest(http.MethodGet, "http://registry/", nil)
	u, err := d.RedirectURL(r, "/blob")
	require.NoError(t, err)
	resp, err := httpDo(http.MethodGet, u)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	time.Sleep(2100 * time.Millisecond)
	resp, err = httpDo(http.MethodGet, u)
	require.NoError(t, err)
	require.Equal(t, http.StatusForbidden, resp.StatusCode, "an expired URL is refused")
}

// TestDriverDoesNotFormatSecrets: no value reachable from the driver
// prints the secret key.
func TestDriverDoesNotFormatSecrets(t *testing.T) {
	srv := testenv.StartEmulator(t, costest.Options{})
	d := newTestDriver(t, srv, nil)
	for _, v := range []any{d, internal(d), *internal(d), internal(d).params} {
		for _, verb := range []string{"%v", "%+v", "%#v", "%s"} {
			require.NotContains(t, fmt.Sprintf(verb, v), srv.SecretKey, verb)
		}
	}
}

// TestNoValueReachableFromTheDriverFormatsASecret: beyond the driver
// itself, the values it holds (parameters, credential source, SDK clients,
// their HTTP client and signing transport) format without the secret key
// in every verb, %d and %x included.
func TestNoValueReachableFromTheDriverFormatsASecret(t *testing.T) {
	srv := testenv.StartEmulator(t, costest.Options{})
	d := newTestDriver(t, srv, nil)
	id := internal(d)
	require.Equal(t, srv.SecretKey, id.params.SecretKey, "the driver holds the key")
	transport := id.httpClient.Transport.(*signingTransport)
	for _, v := range []any{d, *d, id, *id, id.params, id.endpoints, id.credentials,
		id.client, *id.client, id.presign, *id.presign, id.httpClient, *id.httpClient, transport, *transport} {
		for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%d", "%x"} {
			require.NotContains(t, fmt.Sprintf(verb, v), srv.SecretKey, "%s of %T", verb, v)
		}
	}
}
