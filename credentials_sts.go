package cos

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"strings"
	"time"

	tccommon "github.com/tencentcloud/tencentcloud-sdk-go/tencentcloud/common"
	tcerr "github.com/tencentcloud/tencentcloud-sdk-go/tencentcloud/common/errors"
	tchttp "github.com/tencentcloud/tencentcloud-sdk-go/tencentcloud/common/http"
	"github.com/tencentcloud/tencentcloud-sdk-go/tencentcloud/common/profile"
	cossdk "github.com/tencentyun/cos-go-sdk-v5"
)

// Defaults of the identity services.
const (
	// DefaultCVMMetadataURL is the CVM instance metadata service.
	DefaultCVMMetadataURL = "http://metadata.tencentyun.com"
	// DefaultSTSEndpoint is Tencent Cloud's STS. From inside Tencent Cloud
	// https://sts.internal.tencentcloudapi.com avoids the Internet.
	DefaultSTSEndpoint = "https://sts.tencentcloudapi.com"
	// DefaultRoleSessionName names the STS sessions of the driver (it
	// appears in CloudAudit).
	DefaultRoleSessionName = "registry-cos"
	// DefaultRoleDuration is the lifetime asked of STS (its own default).
	DefaultRoleDuration = 2 * time.Hour
	// stsRegion is the Region parameter of AssumeRole when the bucket's
	// region is not known; STS serves every region.
	stsRegion = "ap-guangzhou"
	// metadataTimeout bounds one request to the metadata service, which
	// answers at once on CVM; elsewhere its name does not resolve.
	metadataTimeout = 5 * time.Second
)

// stsClient calls Tencent Cloud STS through the official SDK's common
// client (tencentcloud-sdk-go/tencentcloud/common), which builds the API
// 3.0 request, signs it with TC3-HMAC-SHA256 and decodes STS errors. The
// SDK's ready-made providers (RoleArnProvider, OIDCRoleArnProvider) are not
// used: they always use https and an HTTP client of their own, so they
// cannot be pointed at a test STS or given a proxy and timeouts, and the
// credentials they return keep their expiry unexported, which renewal
// needs (their own refresh holds a lock across the fetch and has no
// backoff).
type stsClient struct {
	endpoint  *url.URL
	region    string
	transport http.RoundTripper
}

func newSTSClient(p Parameters, region string) stsClient {
	endpoint := p.STSEndpoint
	if endpoint == "" {
		endpoint = DefaultSTSEndpoint
	}
	u, _ := url.Parse(endpoint) // checked by Validate
	transport := http.DefaultTransport.(*http.Transport).Clone()
	return stsClient{endpoint: u, region: region, transport: transport}
}

// stsAnswer is the Response of AssumeRole and AssumeRoleWithWebIdentity.
type stsAnswer struct {
	Response struct {
		Credentials struct {
			Token, TmpSecretId, TmpSecretKey string //nolint:revive // STS's names
		}
		ExpiredTime int64
	}
}

// call sends one STS action; signer nil sends it unsigned.
func (c stsClient) call(ctx context.Context, action string, signer *cossdk.Credential, params map[string]any) (cossdk.Credential, time.Time, error) {
	cpf := profile.NewClientProfile()
	cpf.HttpProfile.Endpoint = c.endpoint.Host
	cpf.HttpProfile.Scheme = strings.ToUpper(c.endpoint.Scheme)
	cpf.HttpProfile.ReqMethod = http.MethodPost
	cpf.HttpProfile.ReqTimeout = int(renewalTimeout / time.Second)
	var cred tccommon.CredentialIface
	if signer != nil {
		cred = tccommon.NewTokenCredential(signer.SecretID, signer.SecretKey, signer.SessionToken)
	}
	client := tccommon.NewCommonClient(cred, c.region, cpf).WithHttpTransport(c.transport)
	req := tchttp.NewCommonRequest("sts", "2018-08-13", action)
	req.SetContext(ctx)
	req.SetSkipSign(signer == nil)
	if err := req.SetActionParameters(params); err != nil {
		return cossdk.Credential{}, time.Time{}, err
	}
	resp := tchttp.NewCommonResponse()
	if err := client.Send(req, resp); err != nil {
		var sdkErr *tcerr.TencentCloudSDKError
		if errors.As(err, &sdkErr) {
			return cossdk.Credential{}, time.Time{}, fmt.Errorf("STS %s at %s answered %s: %s", action, c.endpoint.Host, sdkErr.Code, sdkErr.Message)
		}
		return cossdk.Credential{}, time.Time{}, fmt.Errorf("STS %s at %s: %v", action, c.endpoint.Host, err)
	}
	var answer stsAnswer
	if err := json.Unmarshal(resp.GetBody(), &answer); err != nil {
		return cossdk.Credential{}, time.Time{}, fmt.Errorf("STS %s at %s: unreadable answer: %v", action, c.endpoint.Host, err)
	}
	k := answer.Response.Credentials
	return cossdk.Credential{SecretID: k.TmpSecretId, SecretKey: k.TmpSecretKey, SessionToken: k.Token},
		time.Unix(answer.Response.ExpiredTime, 0), nil
}

// newTKEPodIdentity is link 4: the variables TKE's pod-identity webhook
// injects into pods whose ServiceAccount is annotated with a role. It
// returns nil when none is set. The token file is read again for every
// renewal, because the kubelet rotates it.
func newTKEPodIdentity(ctx context.Context, p Parameters) (credentialSource, error) {
	names := []string{envTKERoleARN, envTKETokenFile, envTKEProviderID, envTKERegion}
	var missing []string
	for _, n := range names {
		if os.Getenv(n) == "" {
			missing = append(missing, n)
		}
	}
	if len(missing) == len(names) {
		return nil, nil
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("cos: TKE pod identity is half configured: %s not set (the pod-identity webhook sets all of %s)",
			strings.Join(missing, ", "), strings.Join(names, ", "))
	}
	roleARN, tokenFile, provider := os.Getenv(envTKERoleARN), os.Getenv(envTKETokenFile), os.Getenv(envTKEProviderID)
	sts := newSTSClient(p, os.Getenv(envTKERegion))
	name := fmt.Sprintf("TKE pod identity (role %s, provider %s)", roleARN, provider)
	return newRenewingCredentials(ctx, name, func(ctx context.Context) (cossdk.Credential, time.Time, error) {
		token, err := os.ReadFile(tokenFile)
		if err != nil {
			return cossdk.Credential{}, time.Time{}, fmt.Errorf("cannot read the web identity token (%s): %v", envTKETokenFile, err)
		}
		return sts.call(ctx, "AssumeRoleWithWebIdentity", nil, map[string]any{
			"ProviderId":       provider,
			"WebIdentityToken": strings.TrimSpace(string(token)),
			"RoleArn":          roleARN,
			"RoleSessionName":  p.RoleSessionName,
			"DurationSeconds":  int64(p.RoleDuration / time.Second),
		})
	})
}

// newAssumedRole assumes rolearn with the keys of base (cross-account
// buckets), renewing like any temporary keys; each renewal signs with
// base's keys of the moment.
func newAssumedRole(ctx context.Context, p Parameters, base credentialSource) (credentialSource, error) {
	region := p.Region
	if region == "" {
		region = stsRegion
	}
	sts := newSTSClient(p, region)
	name := fmt.Sprintf("role %s assumed with %s", p.RoleARN, base.describe())
	return newRenewingCredentials(ctx, name, func(ctx context.Context) (cossdk.Credential, time.Time, error) {
		signer, err := base.credential(ctx)
		if err != nil {
			return cossdk.Credential{}, time.Time{}, err
		}
		return sts.call(ctx, "AssumeRole", &signer, map[string]any{
			"RoleArn":         p.RoleARN,
			"RoleSessionName": p.RoleSessionName,
			"DurationSeconds": int64(p.RoleDuration / time.Second),
		})
	})
}

// metadataClient reaches the instance metadata service directly: it is a
// link-local service no proxy can reach. The SDK's CvmRoleProvider is not
// used: its URL is fixed (no test server), its HTTP client has no timeout,
// and its keys hide their expiry.
//
// It stays package-level, set once and never replaced: it holds no
// setting of a driver (the metadata URL is the source's), and one client
// shares one connection pool among every source of the process.
var metadataClient = &http.Client{
	Timeout:   metadataTimeout,
	Transport: &http.Transport{Proxy: nil, ResponseHeaderTimeout: metadataTimeout},
}

func metadataBase(metadataURL string) string {
	if metadataURL == "" {
		metadataURL = DefaultCVMMetadataURL
	}
	return strings.TrimSuffix(metadataURL, "/") + "/latest/meta-data/cam/security-credentials/"
}

// metadataGet reads one metadata document; status is 0 when the service
// cannot be reached.
func metadataGet(ctx context.Context, u string) (body []byte, status int, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, 0, err
	}
	resp, err := metadataClient.Do(req)
	if err != nil {
		return nil, 0, err
	}
	defer resp.Body.Close()
	body, err = io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return body, resp.StatusCode, err
}

// discoverCVMRole asks the metadata service which role is bound to this
// instance; "" when none is, or when this is not a CVM (no metadata
// service).
func discoverCVMRole(ctx context.Context, metadataURL string) (string, error) {
	body, status, err := metadataGet(ctx, metadataBase(metadataURL))
	switch {
	case status == 0 || status == http.StatusNotFound:
		return "", nil
	case err != nil:
		return "", fmt.Errorf("cos: listing the CVM instance role at %s: %v", metadataBase(metadataURL), err)
	case status != http.StatusOK:
		return "", fmt.Errorf("cos: listing the CVM instance role: the instance metadata service at %s answered %d", metadataBase(metadataURL), status)
	}
	// The listing holds one role name (CVM binds at most one).
	role, _, _ := strings.Cut(strings.TrimSpace(string(body)), "\n")
	return strings.TrimSpace(role), nil
}

// newCVMRole is the temporary keys of a CVM instance role, read from the
// instance metadata service.
func newCVMRole(ctx context.Context, role, metadataURL, how string) (credentialSource, error) {
	u := metadataBase(metadataURL) + url.PathEscape(role)
	name := fmt.Sprintf("CVM role %s (%s)", role, how)
	return newRenewingCredentials(ctx, name, func(ctx context.Context) (cossdk.Credential, time.Time, error) {
		body, status, err := metadataGet(ctx, u)
		if status == 0 {
			return cossdk.Credential{}, time.Time{}, fmt.Errorf("cvmrole %q: cannot reach the instance metadata service at %s: %v", role, metadataBase(metadataURL), err)
		}
		if status != http.StatusOK {
			return cossdk.Credential{}, time.Time{}, fmt.Errorf("cvmrole %q: the instance metadata service answered %d: is the role bound to this instance?", role, status)
		}
		var answer cossdk.CVMSecurityCredentials
		if err := json.Unmarshal(body, &answer); err != nil {
			return cossdk.Credential{}, time.Time{}, fmt.Errorf("cvmrole %q: unreadable answer from the instance metadata service: %v", role, err)
		}
		if answer.Code != "Success" {
			return cossdk.Credential{}, time.Time{}, fmt.Errorf("cvmrole %q: the instance metadata service gave no credentials (code %q)", role, answer.Code)
		}
		return cossdk.Credential{SecretID: answer.TmpSecretId, SecretKey: answer.TmpSecretKey, SessionToken: answer.Token},
			time.Unix(answer.ExpiredTime, 0), nil
	})
}

// Range of roleduration: STS issues keys for at most 43200 s; below 15
// minutes renewal would leave too little time ahead of expiry.
const (
	minRoleDuration = 15 * time.Minute
	maxRoleDuration = 12 * time.Hour
)

// roleSessionNamePattern is RoleSessionName as the STS API reference gives
// it: 2 to 128 of letters, digits and =,.@_-.
var roleSessionNamePattern = regexp.MustCompile(`^[\w+=,.@-]{2,128}$`)

// roleARNPattern is a CAM role's ARN, by name (qcs::cam::uin/<uin>:roleName/
// <name>, as the STS AssumeRole reference writes RoleArn) or by role ID
// (qcs::cam::uin/<uin>:role/<id>); an AWS ARN would reach STS otherwise.
var roleARNPattern = regexp.MustCompile(`^qcs::cam::uin/[0-9]+:(roleName|role)/[^\s/]+$`)

// validateRoleParameters checks the parameters of STS (Validate calls it).
func validateRoleParameters(p Parameters) error {
	if p.RoleARN != "" && !roleARNPattern.MatchString(p.RoleARN) {
		return fmt.Errorf("cos: parameter rolearn %q is not a CAM role ARN: want qcs::cam::uin/<uin>:roleName/<name>", p.RoleARN)
	}
	if p.RoleSessionName != "" && !roleSessionNamePattern.MatchString(p.RoleSessionName) {
		return fmt.Errorf("cos: parameter rolesessionname %q is not an STS session name: want 2 to 128 letters, digits or =,.@_-", p.RoleSessionName)
	}
	if p.STSEndpoint != "" {
		if _, err := parseBaseURL("stsendpoint", p.STSEndpoint); err != nil {
			return err
		}
	}
	return nil
}
