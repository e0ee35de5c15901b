package main

import (
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/registry-cos/cos/costest"
	"github.com/registry-cos/cos/internal/testenv"
	"github.com/registry-cos/cos/internal/testenv/registrytest"
)

// Temporary credential of TestBinaryPrintsNoSecrets. The values are
// distinctive so that any trace of them in the output is found.
const (
	leakTestSecretID     = "AKIDleakTestTemporaryKey"
	leakTestSecretKey    = "leakTestSecretKeyMustNeverBePrinted"
	leakTestSessionToken = "leakTestSessionTokenMustNeverBePrinted"
)

// TestBinaryPrintsNoSecrets runs the binary at log level debug, with access
// logs on, through a full push and pull (blob pulls redirected to presigned
// COS URLs) on a temporary credential with a session token, and through a
// start that fails on a wrong secret key; it also reads the --help of every
// command. Nothing it prints may carry the secret key, the session token or
// request signatures.
func TestBinaryPrintsNoSecrets(t *testing.T) {
	emulator := testenv.StartEmulator(t, costest.Options{
		Dir: t.TempDir(),
		Credentials: []costest.Credential{{
			SecretID:     leakTestSecretID,
			SecretKey:    leakTestSecretKey,
			SessionToken: leakTestSessionToken,
			Expiry:       time.Now().Add(time.Hour),
		}},
	})
	// The detector itself must see what a presigned URL or an
	// Authorization header would give away.
	sample := "Location: http://b.cos/k?q-sign-algorithm=sha1&q-ak=AKID&q-signature=0a1b2c&x-cos-security-token=" + leakTestSessionToken
	if found := findSecrets(sample, leakTestSecretKey, leakTestSessionToken); len(found) != 4 {
		t.Fatalf("findSecrets found %d leaks in a presigned URL, want 4 (token, algorithm, signature, token parameter): %v", len(found), found)
	}

	config := debugConfigYAML(emulator, registryOptions{Redirect: true}, leakTestSessionToken)

	outputs := map[string]string{}

	t.Run("push and pull", func(t *testing.T) {
		proc := startServeProcess(t, testenv.WriteFile(t, "config.yml", config))
		reg := proc.Registry()
		img := registrytest.NewImage(t, 50, 10<<10, 6*mib+3)
		push(t, reg.Ref(t, "secrets/app:v1"), img)
		pullAndVerifyImage(t, reg.Ref(t, "secrets/app:v1"), img)
		// A pull that fails (unknown tag) logs the error path too.
		if _, err := remote.Image(reg.Ref(t, "secrets/app:missing"), remote.WithContext(testContext(t))); err == nil {
			t.Fatalf("pulling a tag that does not exist succeeded")
		}
		_ = proc.Stop(10 * time.Second)
		outputs["serve through a push and pull"] = proc.Output.String()
		if !strings.Contains(proc.Output.String(), "level=debug") {
			t.Fatalf("serve at log level debug printed no debug line, so this test checks nothing:\n%s", proc.Output.String())
		}
	})

	t.Run("failed start", func(t *testing.T) {
		wrong := strings.Replace(config, fmt.Sprintf("secretkey: %q", leakTestSecretKey), `secretkey: "wrongSecretKeyAlsoSecret"`, 1)
		out, err := runBinary(t, "serve", testenv.WriteFile(t, "config.yml", wrong))
		if err == nil {
			t.Fatalf("serve with a wrong secret key started; output:\n%s", out)
		}
		if strings.Contains(out, "wrongSecretKeyAlsoSecret") {
			t.Errorf("serve with a wrong secret key printed that key:\n%s", out)
		}
		outputs["serve with a wrong secret key"] = out
	})

	for _, args := range [][]string{{"--help"}, {"serve", "--help"}, {"dev", "--help"}, {"garbage-collect", "--help"}} {
		out, err := runBinary(t, args...)
		if err != nil {
			t.Fatalf("registry-cos %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		outputs["registry-cos "+strings.Join(args, " ")] = out
	}

	for what, out := range outputs {
		for _, leak := range findSecrets(out, leakTestSecretKey, leakTestSessionToken) {
			t.Errorf("%s printed %s", what, leak)
		}
	}
}

// debugConfigYAML is registryConfigYAML at log level debug with access logs
// on, and with the emulator's session token.
func debugConfigYAML(emulator *costest.Server, opts registryOptions, sessionToken string) string {
	config := registryConfigYAML(emulator, opts)
	config = strings.Replace(config, "level: warn", "level: debug", 1)
	config = strings.Replace(config, "disabled: true", "disabled: false", 1)
	return strings.Replace(config, "  cos:\n", fmt.Sprintf("  cos:\n    sessiontoken: %q\n", sessionToken), 1)
}

// signatureMaterial matches the parts of a COS signature or presigned URL
// that must not be printed: the signature, the signed key time (which,
// with the key, derives the signing key) and the token parameter. It
// allows the names alone, as in a message saying a signature was refused.
var signatureMaterial = regexp.MustCompile(`(?i)(q-signature|q-sign-algorithm|q-key-time|q-sign-time|x-cos-security-token)\s*[=:]\s*[^\s&"',;]+`)

// findSecrets describes every occurrence in out of a secret or of
// signature material.
func findSecrets(out string, secrets ...string) []string {
	var found []string
	for _, s := range secrets {
		if i := strings.Index(out, s); i >= 0 {
			found = append(found, fmt.Sprintf("the secret %q in %q", s, lineAround(out, i)))
		}
	}
	for _, loc := range signatureMaterial.FindAllStringIndex(out, -1) {
		found = append(found, fmt.Sprintf("signature material %q in %q", out[loc[0]:loc[1]], lineAround(out, loc[0])))
	}
	return found
}

// lineAround returns the line of out that contains offset i, shortened.
func lineAround(out string, i int) string {
	start := strings.LastIndexByte(out[:i], '\n') + 1
	end := strings.IndexByte(out[i:], '\n')
	if end < 0 {
		end = len(out)
	} else {
		end += i
	}
	return truncate([]byte(out[start:end]))
}
