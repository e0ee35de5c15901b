package main

import (
	"strings"
	"testing"
	"time"

	"github.com/registry-cos/cos/costest"
	"github.com/registry-cos/cos/internal/testenv"
	"github.com/registry-cos/cos/internal/testenv/registrytest"
)

// TestServeOnTKEPodIdentity runs `registry-cos serve` (a separate process)
// with no key anywhere in its configuration, only the variables TKE's
// pod-identity webhook sets, against an in-process emulator served over
// HTTP whose STS hands out keys living 3 seconds. An image is pushed, and
// pulled after those first keys have expired, so the binary renewed them
// (reading the token file again) on its own.
func TestServeOnTKEPodIdentity(t *testing.T) {
	const (
		roleARN  = "qcs::cam::uin/100000000001:roleName/registry-tke"
		provider = "cls-e2e"
		token    = "e2ePodTokenMustNeverBePrinted"
		lifetime = 3 * time.Second
	)
	emulator := testenv.StartEmulator(t, costest.Options{
		Dir: t.TempDir(),
		Identity: &costest.IdentityOptions{
			Roles:    []costest.Role{{ARN: roleARN, ProviderID: provider, WebIdentityTokens: []string{token}}},
			Lifetime: lifetime,
		},
	})
	config := registryConfigYAML(emulator, registryOptions{})
	var kept []string
	for _, line := range strings.Split(config, "\n") {
		if !strings.Contains(line, "secretid:") && !strings.Contains(line, "secretkey:") {
			kept = append(kept, line)
		}
	}
	config = strings.Replace(strings.Join(kept, "\n"), "level: warn", "level: info", 1)

	proc := startServeProcess(t, testenv.WriteFile(t, "config.yml", config),
		"TKE_ROLE_ARN="+roleARN,
		"TKE_WEB_IDENTITY_TOKEN_FILE="+testenv.WriteFile(t, "token", token+"\n"),
		"TKE_PROVIDER_ID="+provider,
		"TKE_REGION=ap-guangzhou",
		// Where STS is: the emulator's, not sts.tencentcloudapi.com.
		"REGISTRY_STORAGE_COS_STSENDPOINT="+emulator.STSURL,
		// Nothing of the machine running the test joins the chain.
		"HOME="+t.TempDir(), "TENCENTCLOUD_SECRET_ID=", "TENCENTCLOUD_SECRET_KEY=",
	)
	reg := proc.Registry()
	img := registrytest.NewImage(t, 70, 64<<10, 6*mib)
	push(t, reg.Ref(t, "tke/app:v1"), img)
	time.Sleep(lifetime + 500*time.Millisecond) // the keys of the start have expired
	pullAndVerifyImage(t, reg.Ref(t, "tke/app:v1"), img)

	if fetches := emulator.Stats().Count(costest.OpAssumeRoleWithWebIdentity); fetches < 2 {
		t.Errorf("STS was asked %d times, want the first keys and at least one renewal", fetches)
	}
	out := proc.Output.String()
	if want := "using the credentials from TKE pod identity (role " + roleARN + ", provider " + provider + ")"; !strings.Contains(out, want) {
		t.Errorf("serve's start-up log does not say %q:\n%s", want, out)
	}
	if strings.Contains(out, token) {
		t.Errorf("serve printed the web identity token:\n%s", out)
	}
}
