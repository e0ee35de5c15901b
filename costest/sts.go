package costest

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// IdentityOptions turn on the emulated Tencent Cloud identity services that
// hand out temporary keys: a minimal STS (AssumeRole and
// AssumeRoleWithWebIdentity, API version 2018-08-13) and the CVM instance
// metadata service. Every key they issue carries a session token and an
// expiry, and the emulator's COS side accepts it until then (ExpiredToken
// after), as it does with Options.Credentials.
type IdentityOptions struct {
	// Roles are the CAM roles STS may hand out keys for.
	Roles []Role
	// InstanceRole is the role bound to the emulated CVM instance: the
	// metadata service lists it and issues its keys. Empty: no role bound
	// (the listing answers 404, as on an instance without a role).
	InstanceRole string
	// Lifetime, when not zero, is the lifetime of every key issued,
	// whatever DurationSeconds asks for; tests of renewal use seconds.
	// Zero: DurationSeconds (default 7200 s) for STS, 2 hours for the
	// metadata service.
	Lifetime time.Duration
	// Faults are injected into identity requests only (COS requests use
	// Options.Faults).
	Faults IdentityFaults
	// STSAddr and MetadataAddr are the listen addresses of NewServer's
	// STS and metadata listeners. Default "127.0.0.1:0".
	STSAddr, MetadataAddr string
}

// Role is a CAM role of the emulated STS.
type Role struct {
	// ARN names the role as RoleArn does, such as
	// "qcs::cam::uin/100000000001:roleName/registry".
	ARN string
	// ProviderID and WebIdentityTokens let AssumeRoleWithWebIdentity
	// assume the role: the request must name ProviderID and present one of
	// WebIdentityTokens. Handler.SetWebIdentityTokens replaces them, as
	// when Kubernetes rotates a ServiceAccount token.
	ProviderID        string
	WebIdentityTokens []string
	// AssumableBy lists the SecretIds whose signed AssumeRole may assume
	// the role (the role's trust policy); empty means any key the emulator
	// accepts, temporary ones included.
	AssumableBy []string
}

// IdentityFaults are faults of the identity services.
type IdentityFaults struct {
	// Latency is added before answering each request.
	Latency time.Duration
	// ErrorRate is the fraction of requests answered with an internal
	// error (STS: InternalError.SystemError; metadata service: 500).
	ErrorRate float64
}

// Operation names of the identity services, as counted in Stats.
const (
	OpAssumeRole                = "AssumeRole"
	OpAssumeRoleWithWebIdentity = "AssumeRoleWithWebIdentity"
	OpMetadataRoleList          = "MetadataRoleList"
	OpMetadataCredentials       = "MetadataCredentials"
)

// identityState is the mutable side of the identity services.
type identityState struct {
	mu       sync.Mutex
	roles    map[string]Role
	instance string
	lifetime time.Duration
	faults   IdentityFaults
	issued   map[string]Credential // by SecretID
}

func newIdentityState(opts *IdentityOptions) *identityState {
	s := &identityState{roles: map[string]Role{}, issued: map[string]Credential{}}
	if opts != nil {
		for _, r := range opts.Roles {
			s.roles[r.ARN] = r
		}
		s.instance, s.lifetime, s.faults = opts.InstanceRole, opts.Lifetime, opts.Faults
	}
	return s
}

// lookupCredential finds a key the emulator accepts: a configured one, or
// a temporary one the identity services issued.
func (h *Handler) lookupCredential(secretID string) (Credential, bool) {
	if c, ok := h.credentials[secretID]; ok {
		return c, true
	}
	h.identity.mu.Lock()
	defer h.identity.mu.Unlock()
	c, ok := h.identity.issued[secretID]
	return c, ok
}

// issue creates a temporary key valid for lifetime (or the configured
// override) and records it for the COS side.
func (s *identityState) issue(lifetime time.Duration, now time.Time) Credential {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.lifetime > 0 {
		lifetime = s.lifetime
	}
	c := Credential{
		SecretID:     "AKIDtmp" + randomHex(12),
		SecretKey:    randomHex(16),
		SessionToken: "token" + randomHex(24),
		Expiry:       now.Add(lifetime),
	}
	for id, old := range s.issued {
		if now.After(old.Expiry.Add(time.Hour)) {
			delete(s.issued, id) // long expired: nobody can use it any more
		}
	}
	s.issued[c.SecretID] = c
	return c
}

// SetWebIdentityTokens replaces the web identity tokens that let
// AssumeRoleWithWebIdentity assume roleARN; it reports false for an
// unknown role.
func (h *Handler) SetWebIdentityTokens(roleARN string, tokens ...string) bool {
	h.identity.mu.Lock()
	defer h.identity.mu.Unlock()
	r, ok := h.identity.roles[roleARN]
	if ok {
		r.WebIdentityTokens = slices.Clone(tokens)
		h.identity.roles[roleARN] = r
	}
	return ok
}

// SetIdentityFaults replaces the faults of the identity services.
func (h *Handler) SetIdentityFaults(f IdentityFaults) {
	h.identity.mu.Lock()
	h.identity.faults = f
	h.identity.mu.Unlock()
}

// identityFault applies the injected latency and reports whether this
// request must fail. ok is false when the client went away meanwhile.
func (h *Handler) identityFault(ctx context.Context) (fail, ok bool) {
	h.identity.mu.Lock()
	f := h.identity.faults
	h.identity.mu.Unlock()
	if f.Latency > 0 {
		t := time.NewTimer(f.Latency)
		defer t.Stop()
		select {
		case <-t.C:
		case <-ctx.Done():
			return false, false
		}
	}
	return h.faults.chance(f.ErrorRate), true
}

// stsError is an STS error, answered as TencentCloud API 3.0 does: HTTP
// 200 with Response.Error.
type stsError struct{ code, message string }

func (e *stsError) Error() string { return e.code + ": " + e.message }

// STSHandler serves the emulated STS: POST / with a JSON body and the
// X-TC-Action header, as the TencentCloud API 3.0 clients send it.
// NewServer serves it at Server.STSURL when Options.Identity is set.
func (h *Handler) STSHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		action := r.Header.Get("X-TC-Action")
		h.stats.request(action)
		requestID := randomHex(16)
		answer := func(v map[string]any) {
			v["RequestId"] = requestID
			body, _ := json.Marshal(map[string]any{"Response": v})
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("X-TC-RequestId", requestID)
			w.Write(body)
			h.stats.finish(action, http.StatusOK, r.ContentLength, int64(len(body)))
		}
		fail := func(e *stsError) {
			answer(map[string]any{"Error": map[string]any{"Code": e.code, "Message": e.message}})
		}
		if injected, ok := h.identityFault(r.Context()); !ok {
			return
		} else if injected {
			h.stats.fault("error")
			fail(&stsError{"InternalError.SystemError", "Internal error (injected by costest)."})
			return
		}
		body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		if err != nil {
			return
		}
		c, e := h.serveSTS(r, action, body, time.Now())
		if e != nil {
			fail(e)
			return
		}
		answer(map[string]any{
			"Credentials": map[string]any{"TmpSecretId": c.SecretID, "TmpSecretKey": c.SecretKey, "Token": c.SessionToken},
			"ExpiredTime": c.Expiry.Unix(),
			"Expiration":  c.Expiry.UTC().Format(time.RFC3339),
		})
	})
}

// roleSessionNamePattern is RoleSessionName as the STS API reference gives
// it: 2 to 128 of letters, digits and =,.@_-.
var roleSessionNamePattern = regexp.MustCompile(`^[\w+=,.@-]{2,128}$`)

// Limits of DurationSeconds in the STS API reference (default 7200, at
// most 43200).
const (
	defaultRoleDuration = 7200 * time.Second
	maxRoleDuration     = 43200 * time.Second
)

// serveSTS checks one STS request and issues its key.
func (h *Handler) serveSTS(r *http.Request, action string, body []byte, now time.Time) (Credential, *stsError) {
	if r.Method != http.MethodPost || !strings.HasPrefix(strings.ToLower(r.Header.Get("Content-Type")), "application/json") {
		// API 3.0 also accepts GET and form posts; the SDKs' credential
		// providers send JSON posts, the only form emulated.
		return Credential{}, &stsError{"UnsupportedProtocol", "The costest STS accepts only POST with a JSON body."}
	}
	if v := r.Header.Get("X-TC-Version"); v != "2018-08-13" {
		return Credential{}, &stsError{"InvalidParameter.ParamError", fmt.Sprintf("X-TC-Version %q is not the STS version 2018-08-13.", v)}
	}
	if r.Header.Get("X-TC-Region") == "" {
		return Credential{}, &stsError{"MissingParameter", "The request is missing the Region parameter (X-TC-Region)."}
	}
	var params struct {
		RoleArn, RoleSessionName, ProviderId, WebIdentityToken string
		DurationSeconds                                        json.RawMessage
	}
	if err := json.Unmarshal(body, &params); err != nil {
		return Credential{}, &stsError{"InvalidParameter.ParamError", "The request body is not a JSON object: " + err.Error()}
	}
	duration, e := parseRoleDuration(params.DurationSeconds)
	if e != nil {
		return Credential{}, e
	}
	if params.RoleArn == "" {
		return Credential{}, &stsError{"MissingParameter", "The request is missing the RoleArn parameter."}
	}
	if !roleSessionNamePattern.MatchString(params.RoleSessionName) {
		return Credential{}, &stsError{"InvalidParameter.ParamError", fmt.Sprintf("RoleSessionName %q must be 2 to 128 letters, digits or =,.@_-.", params.RoleSessionName)}
	}
	h.identity.mu.Lock()
	role, known := h.identity.roles[params.RoleArn]
	h.identity.mu.Unlock()

	switch action {
	case OpAssumeRoleWithWebIdentity:
		// Unsigned by design: the STS reference says a v3 call carries
		// "Authorization: SKIP" and no X-TC-Token. The token proves who
		// calls.
		if a := r.Header.Get("Authorization"); a != "" && a != "SKIP" {
			return Credential{}, &stsError{"AuthFailure.InvalidAuthorization", "AssumeRoleWithWebIdentity takes Authorization: SKIP."}
		}
		if params.ProviderId == "" || params.WebIdentityToken == "" {
			return Credential{}, &stsError{"MissingParameter", "The request needs ProviderId and WebIdentityToken."}
		}
		if !known {
			return Credential{}, &stsError{"ResourceNotFound.RoleNotFound", fmt.Sprintf("The role %s does not exist.", params.RoleArn)}
		}
		// Whether STS names a wrong provider differently from a wrong
		// token is [UNCONFIRMED]; both are refused here.
		if role.ProviderID != params.ProviderId || !slices.Contains(role.WebIdentityTokens, params.WebIdentityToken) {
			return Credential{}, &stsError{"InvalidParameter.WebIdentityTokenError", "The WebIdentityToken is not valid for this role and provider."}
		}
	case OpAssumeRole:
		caller, e := h.verifyTC3(r, body, now)
		if e != nil {
			return Credential{}, e
		}
		if !known {
			return Credential{}, &stsError{"ResourceNotFound.RoleNotFound", fmt.Sprintf("The role %s does not exist.", params.RoleArn)}
		}
		if len(role.AssumableBy) > 0 && !slices.Contains(role.AssumableBy, caller.SecretID) {
			return Credential{}, &stsError{"UnauthorizedOperation", fmt.Sprintf("The caller %s may not assume %s.", caller.SecretID, params.RoleArn)}
		}
	default:
		return Credential{}, &stsError{"InvalidAction", fmt.Sprintf("The costest STS does not implement the action %q.", action)}
	}
	return h.identity.issue(duration, now), nil
}

// parseRoleDuration reads DurationSeconds, which clients send as a number
// or, as in the API reference's examples, as a string.
func parseRoleDuration(raw json.RawMessage) (time.Duration, *stsError) {
	if len(raw) == 0 || string(raw) == "null" {
		return defaultRoleDuration, nil
	}
	s := strings.Trim(string(raw), `"`)
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, &stsError{"InvalidParameter.ParamError", fmt.Sprintf("DurationSeconds %s is not an integer.", raw)}
	}
	d := time.Duration(n) * time.Second
	if d == 0 {
		return defaultRoleDuration, nil
	}
	if d < 0 || d > maxRoleDuration {
		return 0, &stsError{"InvalidParameter.OverTimeError", fmt.Sprintf("DurationSeconds %d is out of range: at most 43200.", n)}
	}
	return d, nil
}

// tc3MaxSkew is how far X-TC-Timestamp may be from the server's clock: the
// API 3.0 signature reference allows five minutes (AuthFailure.SignatureExpire).
const tc3MaxSkew = 5 * time.Minute

// verifyTC3 checks a TC3-HMAC-SHA256 signature (API 3.0 "signature v3")
// and returns the key that signed it.
func (h *Handler) verifyTC3(r *http.Request, body []byte, now time.Time) (Credential, *stsError) {
	auth := r.Header.Get("Authorization")
	algorithm, rest, _ := strings.Cut(auth, " ")
	if algorithm != "TC3-HMAC-SHA256" {
		return Credential{}, &stsError{"AuthFailure.InvalidAuthorization", "The Authorization header is not a TC3-HMAC-SHA256 signature."}
	}
	fields := map[string]string{}
	for part := range strings.SplitSeq(rest, ",") {
		k, v, _ := strings.Cut(strings.TrimSpace(part), "=")
		fields[k] = v
	}
	scope := strings.Split(fields["Credential"], "/")
	if len(scope) != 4 || scope[2] != "sts" || scope[3] != "tc3_request" || fields["SignedHeaders"] == "" || fields["Signature"] == "" {
		return Credential{}, &stsError{"AuthFailure.InvalidAuthorization", "The Authorization header is malformed: want Credential=ID/DATE/sts/tc3_request, SignedHeaders and Signature."}
	}
	secretID, date := scope[0], scope[1]
	ts, err := strconv.ParseInt(r.Header.Get("X-TC-Timestamp"), 10, 64)
	if err != nil {
		return Credential{}, &stsError{"MissingParameter", "The request is missing a valid X-TC-Timestamp."}
	}
	signed := time.Unix(ts, 0)
	if d := now.Sub(signed); d > tc3MaxSkew || d < -tc3MaxSkew {
		return Credential{}, &stsError{"AuthFailure.SignatureExpire", "The signature has expired: X-TC-Timestamp is more than 5 minutes from the server time."}
	}
	cred, ok := h.lookupCredential(secretID)
	if !ok {
		return Credential{}, &stsError{"AuthFailure.SecretIdNotFound", "The SecretId is not found."}
	}
	if !cred.Expiry.IsZero() && now.After(cred.Expiry) {
		// The code STS answers for an expired temporary key is
		// [UNCONFIRMED]; TokenFailure is the family of token problems.
		return Credential{}, &stsError{"AuthFailure.TokenFailure", "The temporary key has expired."}
	}
	if cred.SessionToken != "" && r.Header.Get("X-TC-Token") != cred.SessionToken {
		return Credential{}, &stsError{"AuthFailure.TokenFailure", "The X-TC-Token is missing or does not belong to the SecretId."}
	}
	signedHeaders := strings.Split(fields["SignedHeaders"], ";")
	if !slices.Contains(signedHeaders, "host") || !slices.Contains(signedHeaders, "content-type") {
		return Credential{}, &stsError{"AuthFailure.InvalidAuthorization", "SignedHeaders must include content-type and host."}
	}
	var canonicalHeaders strings.Builder
	for _, name := range signedHeaders {
		value := r.Header.Get(name)
		if name == "host" {
			value = r.Host
		}
		// Names and values are lower-cased and trimmed (signature v3, step 1).
		canonicalHeaders.WriteString(name + ":" + strings.ToLower(strings.TrimSpace(value)) + "\n")
	}
	payload := body
	if r.Header.Get("X-TC-Content-SHA256") == "UNSIGNED-PAYLOAD" {
		payload = []byte("UNSIGNED-PAYLOAD")
	}
	canonicalRequest := strings.Join([]string{
		r.Method, "/", r.URL.RawQuery, canonicalHeaders.String(), fields["SignedHeaders"], sha256Hex(payload),
	}, "\n")
	stringToSign := "TC3-HMAC-SHA256\n" + strconv.FormatInt(ts, 10) + "\n" + date + "/sts/tc3_request\n" + sha256Hex([]byte(canonicalRequest))
	if date != signed.UTC().Format("2006-01-02") {
		return Credential{}, &stsError{"AuthFailure.SignatureFailure", "The date of the credential scope is not the UTC date of X-TC-Timestamp."}
	}
	key := hmacSHA256([]byte("TC3"+cred.SecretKey), date)
	key = hmacSHA256(key, "sts")
	key = hmacSHA256(key, "tc3_request")
	want := hex.EncodeToString(hmacSHA256(key, stringToSign))
	if !hmac.Equal([]byte(want), []byte(fields["Signature"])) {
		return Credential{}, &stsError{"AuthFailure.SignatureFailure", "The provided credentials could not be validated: the signature does not match."}
	}
	return cred, nil
}

func hmacSHA256(key []byte, msg string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(msg))
	return m.Sum(nil)
}

func sha256Hex(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// startIdentityServers serves STSHandler and MetadataHandler on their own
// local listeners: on Tencent Cloud they are other hosts than COS
// (sts.tencentcloudapi.com, metadata.tencentyun.com).
func (s *Server) startIdentityServers(opts *IdentityOptions) error {
	for _, target := range []struct {
		url     *string
		addr    string
		handler http.Handler
	}{{&s.STSURL, opts.STSAddr, s.STSHandler()}, {&s.MetadataURL, opts.MetadataAddr, s.MetadataHandler()}} {
		ln, err := listenLocal(target.addr)
		if err != nil {
			for _, started := range s.identityServers {
				started.Close()
			}
			return err
		}
		srv := newHTTPServer(target.handler)
		s.identityServers = append(s.identityServers, srv)
		*target.url = "http://" + ln.Addr().String()
		go srv.Serve(ln)
	}
	return nil
}
