package costest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	tccommon "github.com/tencentcloud/tencentcloud-sdk-go/tencentcloud/common"
	tcerr "github.com/tencentcloud/tencentcloud-sdk-go/tencentcloud/common/errors"
	tchttp "github.com/tencentcloud/tencentcloud-sdk-go/tencentcloud/common/http"
	"github.com/tencentcloud/tencentcloud-sdk-go/tencentcloud/common/profile"
)

const (
	testRoleARN  = "qcs::cam::uin/100000000001:roleName/registry"
	testProvider = "cls-test"
)

func identityServer(t *testing.T, opts IdentityOptions) *Server {
	t.Helper()
	if opts.Roles == nil {
		opts.Roles = []Role{{ARN: testRoleARN, ProviderID: testProvider, WebIdentityTokens: []string{"token-a"}}}
	}
	return startServer(t, Options{
		Credentials: []Credential{
			{SecretID: DefaultSecretID, SecretKey: DefaultSecretKey},
			{SecretID: "AKIDtemporary", SecretKey: "temporarykey", SessionToken: "temporary-token", Expiry: time.Now().Add(time.Hour)},
		},
		Identity: &opts,
	})
}

// stsCall sends one action with Tencent's official SDK common client (the
// signer the driver uses too); cred nil sends it unsigned. mutate, when
// set, changes the signed request on its way.
func stsCall(t *testing.T, srv *Server, action string, cred tccommon.CredentialIface, params map[string]any, mutate func(*http.Request)) (map[string]any, error) {
	t.Helper()
	u, _ := url.Parse(srv.STSURL)
	cpf := profile.NewClientProfile()
	cpf.HttpProfile.Endpoint, cpf.HttpProfile.Scheme = u.Host, "HTTP"
	var transport http.RoundTripper = http.DefaultTransport
	if mutate != nil {
		transport = roundTripFunc(func(r *http.Request) (*http.Response, error) {
			mutate(r)
			return http.DefaultTransport.RoundTrip(r)
		})
	}
	client := tccommon.NewCommonClient(cred, "ap-guangzhou", cpf).WithHttpTransport(transport)
	req := tchttp.NewCommonRequest("sts", "2018-08-13", action)
	req.SetSkipSign(cred == nil)
	if err := req.SetActionParameters(params); err != nil {
		t.Fatal(err)
	}
	resp := tchttp.NewCommonResponse()
	if err := client.Send(req, resp); err != nil {
		return nil, err
	}
	var answer struct{ Response map[string]any }
	if err := json.Unmarshal(resp.GetBody(), &answer); err != nil {
		t.Fatal(err)
	}
	return answer.Response, nil
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func stsCode(err error) string {
	var e *tcerr.TencentCloudSDKError
	if errors.As(err, &e) {
		return e.Code
	}
	return "not an STS error: " + err.Error()
}

// useIssuedKeys checks that the keys of an STS answer work on the COS side.
func useIssuedKeys(t *testing.T, srv *Server, answer map[string]any) (id, key, token string) {
	t.Helper()
	creds, _ := answer["Credentials"].(map[string]any)
	id, key, token = creds["TmpSecretId"].(string), creds["TmpSecretKey"].(string), creds["Token"].(string)
	if _, ok := answer["ExpiredTime"].(float64); !ok {
		t.Fatalf("answer has no ExpiredTime: %v", answer)
	}
	putBytes(t, newClientWith(t, srv.URL, id, key, token), "issued", []byte("x"))
	return id, key, token
}

// TestSTSAssumeRoleWithSDK: an AssumeRole signed by the official SDK
// (TC3-HMAC-SHA256) gets keys COS accepts until they expire.
func TestSTSAssumeRoleWithSDK(t *testing.T) {
	srv := identityServer(t, IdentityOptions{Lifetime: time.Second})
	answer, err := stsCall(t, srv, OpAssumeRole, tccommon.NewCredential(DefaultSecretID, DefaultSecretKey),
		map[string]any{"RoleArn": testRoleARN, "RoleSessionName": "test", "DurationSeconds": 900}, nil)
	if err != nil {
		t.Fatal(err)
	}
	id, key, token := useIssuedKeys(t, srv, answer)
	// Temporary keys sign AssumeRole too (X-TC-Token).
	if _, err := stsCall(t, srv, OpAssumeRole, tccommon.NewTokenCredential(id, key, token),
		map[string]any{"RoleArn": testRoleARN, "RoleSessionName": "chained"}, nil); err != nil {
		t.Fatalf("AssumeRole signed with temporary keys: %v", err)
	}
	time.Sleep(1100 * time.Millisecond)
	_, err = newClientWith(t, srv.URL, id, key, token).Object.Put(context.Background(), "late", strings.NewReader("x"), nil)
	wantCode(t, err, "ExpiredToken", http.StatusBadRequest)
	if got := srv.Stats().Count(OpAssumeRole); got != 2 {
		t.Fatalf("Stats counts %d AssumeRole, want 2", got)
	}
}

// TestSTSAssumeRoleRefusals: the signature, the key, the token, the clock
// and the role are each checked.
func TestSTSAssumeRoleRefusals(t *testing.T) {
	srv := identityServer(t, IdentityOptions{Roles: []Role{{ARN: testRoleARN, AssumableBy: []string{DefaultSecretID}}}})
	good := tccommon.NewCredential(DefaultSecretID, DefaultSecretKey)
	params := map[string]any{"RoleArn": testRoleARN, "RoleSessionName": "test"}
	tamper := func(r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		body = bytes.Replace(body, []byte("test"), []byte("evil"), 1)
		r.Body, r.ContentLength = io.NopCloser(bytes.NewReader(body)), int64(len(body))
	}
	stale := func(r *http.Request) {
		r.Header.Set("X-TC-Timestamp", strconv.FormatInt(time.Now().Add(-10*time.Minute).Unix(), 10))
	}
	for _, tc := range []struct {
		name   string
		cred   tccommon.CredentialIface
		params map[string]any
		mutate func(*http.Request)
		want   string
	}{
		{"wrong secret key", tccommon.NewCredential(DefaultSecretID, "wrong"), params, nil, "AuthFailure.SignatureFailure"},
		{"unknown secret id", tccommon.NewCredential("AKIDnobody", "x"), params, nil, "AuthFailure.SecretIdNotFound"},
		{"body changed after signing", good, params, tamper, "AuthFailure.SignatureFailure"},
		{"timestamp ten minutes old", good, params, stale, "AuthFailure.SignatureExpire"},
		{"temporary key without its token", tccommon.NewCredential("AKIDtemporary", "temporarykey"), params, nil, "AuthFailure.TokenFailure"},
		{"caller outside the trust policy", tccommon.NewTokenCredential("AKIDtemporary", "temporarykey", "temporary-token"), params, nil, "UnauthorizedOperation"},
		{"unknown role", good, map[string]any{"RoleArn": "qcs::cam::uin/1:roleName/x", "RoleSessionName": "test"}, nil, "ResourceNotFound.RoleNotFound"},
		{"duration over 12 hours", good, map[string]any{"RoleArn": testRoleARN, "RoleSessionName": "test", "DurationSeconds": 43201}, nil, "InvalidParameter.OverTimeError"},
		{"bad session name", good, map[string]any{"RoleArn": testRoleARN, "RoleSessionName": "a b"}, nil, "InvalidParameter.ParamError"},
		{"unsigned", nil, params, nil, "AuthFailure.InvalidAuthorization"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := stsCall(t, srv, OpAssumeRole, tc.cred, tc.params, tc.mutate)
			if err == nil || stsCode(err) != tc.want {
				t.Fatalf("got %v, want %s", err, tc.want)
			}
		})
	}
}

// TestSTSWebIdentity: AssumeRoleWithWebIdentity is unsigned (Authorization:
// SKIP) and checks the provider and the token; a rotation revokes the old
// token.
func TestSTSWebIdentity(t *testing.T) {
	srv := identityServer(t, IdentityOptions{})
	call := func(provider, token string) (map[string]any, error) {
		return stsCall(t, srv, OpAssumeRoleWithWebIdentity, nil, map[string]any{
			"ProviderId": provider, "WebIdentityToken": token, "RoleArn": testRoleARN, "RoleSessionName": "pod",
		}, nil)
	}
	answer, err := call(testProvider, "token-a")
	if err != nil {
		t.Fatal(err)
	}
	useIssuedKeys(t, srv, answer)
	for _, bad := range [][2]string{{testProvider, "token-b"}, {"cls-other", "token-a"}} {
		if _, err := call(bad[0], bad[1]); stsCode(err) != "InvalidParameter.WebIdentityTokenError" {
			t.Fatalf("provider %s token %s: got %v, want InvalidParameter.WebIdentityTokenError", bad[0], bad[1], err)
		}
	}
	srv.SetWebIdentityTokens(testRoleARN, "token-b")
	if _, err := call(testProvider, "token-b"); err != nil {
		t.Fatalf("the rotated token: %v", err)
	}
	if _, err := call(testProvider, "token-a"); err == nil {
		t.Fatal("the token rotated out is still accepted")
	}
	srv.SetIdentityFaults(IdentityFaults{ErrorRate: 1})
	if _, err := call(testProvider, "token-b"); stsCode(err) != "InternalError.SystemError" {
		t.Fatalf("with ErrorRate 1: got %v, want InternalError.SystemError", err)
	}
}

// TestMetadataService serves the instance role's listing and keys as CVM
// does; other roles are 404.
func TestMetadataService(t *testing.T) {
	srv := identityServer(t, IdentityOptions{InstanceRole: "registry-cvm"})
	get := func(path string) (int, string) {
		resp, err := http.Get(srv.MetadataURL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	if status, body := get(metadataCredentialsPath); status != http.StatusOK || body != "registry-cvm" {
		t.Fatalf("listing: %d %q, want 200 registry-cvm", status, body)
	}
	status, body := get(metadataCredentialsPath + "registry-cvm")
	var answer map[string]any
	if err := json.Unmarshal([]byte(body), &answer); status != http.StatusOK || err != nil || answer["Code"] != "Success" {
		t.Fatalf("keys: %d %s", status, body)
	}
	answer["Credentials"] = answer // same field names as STS's Credentials
	useIssuedKeys(t, srv, answer)
	if status, _ := get(metadataCredentialsPath + "other-role"); status != http.StatusNotFound {
		t.Fatalf("another role: %d, want 404", status)
	}
	none := identityServer(t, IdentityOptions{})
	resp, err := http.Get(none.MetadataURL + metadataCredentialsPath)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Fatalf("listing with no role bound: %d, want 404", resp.StatusCode)
	}
}
