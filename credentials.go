package cos

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	cossdk "github.com/tencentyun/cos-go-sdk-v5"
)

// The credential chain, in the order Tencent Cloud's own tools search it
// (the tencentcloud-sdk-go provider chain, tccli, the Terraform provider):
//
//  1. the configuration: secretid + secretkey (+ sessiontoken), or cvmrole;
//  2. the environment: TENCENTCLOUD_SECRET_ID / _SECRET_KEY, and the token
//     under either name the tools use;
//  3. the profile file (TENCENTCLOUD_CREDENTIALS_FILE or
//     ~/.tencentcloud/credentials), section `profile` (default "default");
//  4. TKE pod identity: the TKE_* variables the pod-identity webhook sets
//     → STS AssumeRoleWithWebIdentity (credentials_sts.go);
//  5. the CVM instance role listed by the metadata service.
//
// On top of any of them, rolearn assumes a role with STS AssumeRole.
// Temporary keys of every kind are renewed by renewingCredentials
// (credentials_renew.go).

// Environment variables of the chain.
const (
	envSecretID        = "TENCENTCLOUD_SECRET_ID"
	envSecretKey       = "TENCENTCLOUD_SECRET_KEY"
	envSessionToken    = "TENCENTCLOUD_SESSION_TOKEN"
	envSecurityToken   = "TENCENTCLOUD_SECURITY_TOKEN" // the name tccli and Terraform also read
	envCredentialsFile = "TENCENTCLOUD_CREDENTIALS_FILE"
	envTKERoleARN      = "TKE_ROLE_ARN"
	envTKETokenFile    = "TKE_WEB_IDENTITY_TOKEN_FILE"
	envTKEProviderID   = "TKE_PROVIDER_ID"
	envTKERegion       = "TKE_REGION"
)

// signatureLifetime is the validity of each request's signature.
const signatureLifetime = time.Hour

// defaultProfile is the section of the profile file read when no profile
// is named.
const defaultProfile = "default"

// credentialSource yields the key pair (and token) to sign with now.
type credentialSource interface {
	credential(ctx context.Context) (cossdk.Credential, error)
	// describe names the source for logs and `registry-cos check`; it
	// never contains a secret.
	describe() string
}

type staticCredentials struct {
	cred cossdk.Credential
	name string
}

func (s staticCredentials) credential(context.Context) (cossdk.Credential, error) {
	return s.cred, nil
}

func (s staticCredentials) describe() string { return s.name }

// CredentialSource names where the driver's credentials come from, such as
// "TKE pod identity (role qcs::cam::uin/100000000001:roleName/registry,
// provider cls-abcd1234)". It never contains a secret.
func (d *Driver) CredentialSource() string {
	return d.Base.StorageDriver.(*driver).credentials.describe()
}

// newCredentialSource walks the chain and returns the first source
// present, with rolearn assumed on top when set. Temporary sources fetch
// their first keys here, so a source that cannot work fails the start.
func newCredentialSource(ctx context.Context, p Parameters) (credentialSource, error) {
	base, err := chainSource(ctx, p)
	if err != nil {
		return nil, err
	}
	if p.RoleARN == "" {
		return base, nil
	}
	return newAssumedRole(ctx, p, base)
}

func chainSource(ctx context.Context, p Parameters) (credentialSource, error) {
	// 1. The configuration.
	if p.SecretID != "" {
		name := "configuration (secretid, secretkey)"
		if p.SessionToken != "" {
			name = "configuration (secretid, secretkey, sessiontoken)"
		}
		return staticCredentials{cossdk.Credential{SecretID: p.SecretID, SecretKey: p.SecretKey, SessionToken: p.SessionToken}, name}, nil
	}
	if p.CVMRole != "" {
		return newCVMRole(ctx, p.CVMRole, p.CVMMetadataURL, "named by cvmrole")
	}
	// 2. The environment.
	if s, err := environmentCredentials(); s != nil || err != nil {
		return s, err
	}
	// 3. The profile file.
	if s, err := profileCredentials(p.Profile); s != nil || err != nil {
		return s, err
	}
	// 4. TKE pod identity.
	if s, err := newTKEPodIdentity(ctx, p); s != nil || err != nil {
		return s, err
	}
	// 5. The CVM instance role, if this is a CVM with a role bound.
	role, err := discoverCVMRole(ctx, p.CVMMetadataURL)
	if err != nil {
		return nil, err
	}
	if role != "" {
		return newCVMRole(ctx, role, p.CVMMetadataURL, "listed by the instance metadata service")
	}
	return nil, fmt.Errorf("cos: no credentials: set secretid and secretkey (or cvmrole), or the environment variables %s and %s, "+
		"or write a profile file (%s), or run as a TKE pod with pod identity (%s), or on a CVM instance with a CAM role bound",
		envSecretID, envSecretKey, defaultProfilePath(), envTKERoleARN)
}

func environmentCredentials() (credentialSource, error) {
	id, key := os.Getenv(envSecretID), os.Getenv(envSecretKey)
	switch {
	case id == "" && key == "":
		return nil, nil
	case key == "":
		return nil, fmt.Errorf("cos: the environment variable %s is set but %s is not: set both", envSecretID, envSecretKey)
	case id == "":
		return nil, fmt.Errorf("cos: the environment variable %s is set but %s is not: set both", envSecretKey, envSecretID)
	}
	name := "environment (" + envSecretID + ", " + envSecretKey
	token := os.Getenv(envSessionToken)
	if token != "" {
		name += ", " + envSessionToken
	} else if token = os.Getenv(envSecurityToken); token != "" {
		name += ", " + envSecurityToken
	}
	return staticCredentials{cossdk.Credential{SecretID: id, SecretKey: key, SessionToken: token}, name + ")"}, nil
}

func defaultProfilePath() string {
	if home, err := os.UserHomeDir(); err == nil {
		return filepath.Join(home, ".tencentcloud", "credentials")
	}
	return "~/.tencentcloud/credentials"
}

// profileCredentials reads the profile file of the Tencent Cloud SDKs: INI
// sections of secret_id and secret_key. The SDK's ProfileProvider is not
// used because it reads only the default section and its parser is
// unexported. A missing file ends this link, unless the file or the
// profile was named, which makes it an error.
func profileCredentials(profile string) (credentialSource, error) {
	path, explicitPath := os.LookupEnv(envCredentialsFile)
	if path == "" {
		if explicitPath {
			return nil, fmt.Errorf("cos: the environment variable %s is empty: name the profile file or unset it", envCredentialsFile)
		}
		path = defaultProfilePath()
	}
	section := profile
	if section == "" {
		section = defaultProfile
	}
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) && !explicitPath && profile == "" {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("cos: cannot read the profile file: %v", err)
	}
	defer f.Close()
	values, found := map[string]string{}, false
	current := ""
	scanner := bufio.NewScanner(f)
	for scanner.Scan() {
		line := strings.TrimSpace(scanner.Text())
		switch {
		case line == "" || line[0] == '#' || line[0] == ';':
		case line[0] == '[' && line[len(line)-1] == ']':
			current = strings.TrimSpace(line[1 : len(line)-1])
			found = found || current == section
		case current == section:
			k, v, _ := strings.Cut(line, "=")
			values[strings.ToLower(strings.TrimSpace(k))] = strings.TrimSpace(v)
		}
	}
	if err := scanner.Err(); err != nil {
		return nil, fmt.Errorf("cos: cannot read the profile file %s: %v", path, err)
	}
	if !found {
		return nil, fmt.Errorf("cos: the profile file %s has no [%s] section", path, section)
	}
	if values["secret_id"] == "" || values["secret_key"] == "" {
		return nil, fmt.Errorf("cos: the [%s] section of the profile file %s needs secret_id and secret_key", section, path)
	}
	return staticCredentials{cossdk.Credential{SecretID: values["secret_id"], SecretKey: values["secret_key"]},
		fmt.Sprintf("profile file %s [%s]", path, section)}, nil
}

// credentialError is a failure to obtain credentials; it names the source.
type credentialError struct {
	source string
	err    error
}

func (e *credentialError) Error() string {
	return fmt.Sprintf("cos: credentials from %s: %v", e.source, e.err)
}

func (e *credentialError) Unwrap() error { return e.err }

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

// String and Format describe a source by its name, so that formatting it
// never prints the keys it holds (see Parameters.Format); the signing
// transport, which holds a source, formats as that name too.
func (s staticCredentials) String() string             { return s.name }
func (s staticCredentials) Format(f fmt.State, _ rune) { io.WriteString(f, s.name) }
func (t signingTransport) Format(f fmt.State, _ rune) {
	io.WriteString(f, "signing transport ("+t.source.describe()+")")
}
