package cos

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/sirupsen/logrus"
	cossdk "github.com/tencentyun/cos-go-sdk-v5"
)

// DefaultCVMMetadataURL is the CVM instance metadata service.
const DefaultCVMMetadataURL = "http://metadata.tencentyun.com"

// Environment variables read when the configuration names no credentials,
// as the Tencent Cloud tools do.
const (
	envSecretID     = "TENCENTCLOUD_SECRET_ID"
	envSecretKey    = "TENCENTCLOUD_SECRET_KEY"
	envSessionToken = "TENCENTCLOUD_SESSION_TOKEN"
)

// roleRefreshMargin is how long before expiry role credentials are renewed.
const roleRefreshMargin = 5 * time.Minute

// signatureLifetime is the validity of each request's signature.
const signatureLifetime = time.Hour

// credentialSource yields the key pair (and token) to sign with now.
type credentialSource interface {
	credential(ctx context.Context) (cossdk.Credential, error)
}

type staticCredentials cossdk.Credential

func (s staticCredentials) credential(context.Context) (cossdk.Credential, error) {
	return cossdk.Credential(s), nil
}

// newCredentialSource picks, in order: the configured key pair, the CVM
// instance role, the TENCENTCLOUD_* environment variables.
func newCredentialSource(p Parameters) (credentialSource, error) {
	switch {
	case p.SecretID != "":
		return staticCredentials{SecretID: p.SecretID, SecretKey: p.SecretKey, SessionToken: p.SessionToken}, nil
	case p.CVMRole != "":
		return newRoleCredentials(p.CVMRole, p.CVMMetadataURL), nil
	case os.Getenv(envSecretID) != "" && os.Getenv(envSecretKey) != "":
		return staticCredentials{SecretID: os.Getenv(envSecretID), SecretKey: os.Getenv(envSecretKey), SessionToken: os.Getenv(envSessionToken)}, nil
	}
	return nil, fmt.Errorf("cos: no credentials: set secretid and secretkey, or cvmrole, or the environment variables %s and %s", envSecretID, envSecretKey)
}

// roleCredentials are the temporary keys of a CVM instance role, read from
// the instance metadata service and renewed before they expire.
type roleCredentials struct {
	role   string
	url    string
	client *http.Client

	mu      sync.Mutex
	current cossdk.Credential
	expiry  time.Time
}

func newRoleCredentials(role, metadataURL string) *roleCredentials {
	if metadataURL == "" {
		metadataURL = DefaultCVMMetadataURL
	}
	return &roleCredentials{role: role, url: strings.TrimSuffix(metadataURL, "/"), client: &http.Client{Timeout: 5 * time.Second}}
}

func (r *roleCredentials) credential(ctx context.Context) (cossdk.Credential, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if time.Until(r.expiry) > roleRefreshMargin {
		return r.current, nil
	}
	cred, expiry, err := r.fetch(ctx)
	if err != nil {
		if time.Now().Before(r.expiry) {
			// Keep signing with keys that are still valid; try again next time.
			logrus.WithField("driver", DriverName).Warnf("renewing CVM role credentials failed, using the current ones: %v", err)
			return r.current, nil
		}
		return cossdk.Credential{}, err
	}
	r.current, r.expiry = cred, expiry
	return cred, nil
}

func (r *roleCredentials) fetch(ctx context.Context) (cossdk.Credential, time.Time, error) {
	u := r.url + "/latest/meta-data/cam/security-credentials/" + r.role
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return cossdk.Credential{}, time.Time{}, fmt.Errorf("cos: cvmrole: %w", err)
	}
	resp, err := r.client.Do(req)
	if err != nil {
		return cossdk.Credential{}, time.Time{}, fmt.Errorf("cos: cvmrole %q: cannot reach the instance metadata service at %s: %w", r.role, r.url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return cossdk.Credential{}, time.Time{}, fmt.Errorf("cos: cvmrole %q: the instance metadata service answered %s: is the role bound to this instance?", r.role, resp.Status)
	}
	var body cossdk.CVMSecurityCredentials
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return cossdk.Credential{}, time.Time{}, fmt.Errorf("cos: cvmrole %q: unreadable answer from the instance metadata service: %w", r.role, err)
	}
	if body.Code != "Success" || body.TmpSecretId == "" || body.TmpSecretKey == "" {
		return cossdk.Credential{}, time.Time{}, fmt.Errorf("cos: cvmrole %q: the instance metadata service gave no credentials (code %q)", r.role, body.Code)
	}
	return cossdk.Credential{SecretID: body.TmpSecretId, SecretKey: body.TmpSecretKey, SessionToken: body.Token},
		time.Unix(body.ExpiredTime, 0), nil
}

// signingTransport signs each request with the current credentials. It
// also gives them to the SDK for presigned URLs (GetCredential).
type signingTransport struct {
	source credentialSource
	base   http.RoundTripper
}

func (t *signingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	cred, err := t.source.credential(req.Context())
	if err != nil {
		if req.Body != nil {
			req.Body.Close()
		}
		return nil, &localError{err}
	}
	req = req.Clone(req.Context())
	cossdk.AddAuthorizationHeader(cred.SecretID, cred.SecretKey, cred.SessionToken, req, cossdk.NewAuthTime(signatureLifetime))
	return t.base.RoundTrip(req)
}

// GetCredential implements the SDK's TransportIface, used for presigning.
func (t *signingTransport) GetCredential() (string, string, string, error) {
	cred, err := t.source.credential(context.Background())
	if err != nil {
		return "", "", "", err
	}
	return cred.SecretID, cred.SecretKey, cred.SessionToken, nil
}

var _ interface {
	GetCredential() (string, string, string, error)
} = (*signingTransport)(nil)
