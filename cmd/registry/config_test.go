package main

import (
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"github.com/distribution/distribution/v3/configuration"

	cos "github.com/registry-cos/cos"
)

// parameterReferences are the parameter references, in English and in
// Chinese, with the heading of their full example.
var parameterReferences = []struct{ path, fullExample string }{
	{"docs/storage-driver.md", "## A full example"},
	{"docs/zh-CN/storage-driver.md", "## 完整示例"},
}

// fullExample returns a reference page and the YAML block of its full
// example section.
func fullExample(t *testing.T, path, heading string) (doc, example string) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", "..", filepath.FromSlash(path)))
	if err != nil {
		t.Fatal(err)
	}
	section := string(data)
	if i := strings.Index(section, heading); i >= 0 {
		section = section[i:]
	} else {
		t.Fatalf("%s has no %q section", path, heading)
	}
	block := regexp.MustCompile("(?s)```yaml\n(.*?)```").FindStringSubmatch(section)
	if block == nil {
		t.Fatalf("%s: no yaml block in %q", path, heading)
	}
	return string(data), block[1]
}

// TestExampleConfigurationsAreValid parses the shipped example
// configurations and the full examples of the parameter references (English
// and Chinese) with the upstream parser and the driver's parameter parser,
// so the examples cannot drift from the parameters the driver accepts, and
// checks that each reference documents every parameter.
func TestExampleConfigurationsAreValid(t *testing.T) {
	configCOS, err := os.ReadFile("config-cos.yml")
	if err != nil {
		t.Fatal(err)
	}
	// wantParams nil means every parameter: the full examples show all.
	type example struct {
		name, yaml string
		wantParams []string
	}
	examples := []example{{"config-cos.yml", string(configCOS), []string{"bucket", "region", "secretid", "secretkey", "chunksize"}}}
	docs := map[string]string{}
	for _, ref := range parameterReferences {
		doc, block := fullExample(t, ref.path, ref.fullExample)
		docs[ref.path] = doc
		examples = append(examples, example{ref.path + " full example", block, nil})
	}

	for _, tc := range examples {
		t.Run(tc.name, func(t *testing.T) {
			config, err := configuration.Parse(strings.NewReader(tc.yaml))
			if err != nil {
				t.Fatalf("configuration.Parse: %v", err)
			}
			if got := config.Storage.Type(); got != cos.DriverName {
				t.Fatalf("storage driver %q, want cos", got)
			}
			params := config.Storage.Parameters()
			got, err := cos.ParseParameters(params)
			if err != nil {
				t.Fatalf("cos.ParseParameters: %v", err)
			}
			if strings.HasSuffix(tc.name, "full example") {
				// Every value is the default but these.
				own := map[string]any{}
				for _, name := range []string{"bucket", "region", "rootdirectory", "secretid", "secretkey"} {
					own[name] = params[name]
				}
				// Defaults applied where they are used, not by the parser.
				own["cvmmetadataurl"], own["stsendpoint"] = cos.DefaultCVMMetadataURL, cos.DefaultSTSEndpoint
				want, err := cos.ParseParameters(own)
				if err != nil {
					t.Fatal(err)
				}
				if !reflect.DeepEqual(got, want) {
					t.Errorf("the full example pins values other than the defaults:\n got %+v\nwant %+v", got, want)
				}
			}
			want := tc.wantParams
			if want == nil {
				want = cos.ParameterNames()
			}
			for _, name := range want {
				if _, ok := params[name]; !ok {
					t.Errorf("%s lacks parameter %s", tc.name, name)
				}
			}
		})
	}

	t.Run("every parameter documented", func(t *testing.T) {
		for _, name := range cos.ParameterNames() {
			for path, doc := range docs {
				if !strings.Contains(doc, "| `"+name+"` |") {
					t.Errorf("%s has no table row for parameter %s", path, name)
				}
			}
			// config-cos.yml shows each, commented out where it is optional.
			if !strings.Contains(string(configCOS), name+":") {
				t.Errorf("config-cos.yml does not show parameter %s", name)
			}
		}
	})
}

// TestHarborConfiguration parses the storage section docs/harbor.md tells
// Harbor operators to write, inside the other sections Harbor's installer
// generates, with the upstream parser and the driver's parameter parser.
func TestHarborConfiguration(t *testing.T) {
	doc, storage := fullExample(t, "docs/harbor.md", "## With Harbor's offline/online installer")
	if !strings.Contains(doc, "registry-cos") {
		t.Fatal("docs/harbor.md does not name the image")
	}
	indented := regexp.MustCompile(`(?m)^   `).ReplaceAllString(storage, "")
	config := `version: 0.1
log:
  level: info
  fields:
    service: registry
` + indented + `http:
  addr: :5000
  secret: placeholder
  debug:
    addr: localhost:5001
auth:
  htpasswd:
    realm: harbor-registry-basic-realm
    path: /etc/registry/passwd
validation:
  disabled: true
redis:
  addrs: [redis:6379]
  db: 1
notifications:
  endpoints:
  - name: harbor
    disabled: false
    url: http://core:8080/service/notifications
    timeout: 3000ms
    threshold: 5
    backoff: 1s
`
	parsed, err := configuration.Parse(strings.NewReader(config))
	if err != nil {
		t.Fatalf("configuration.Parse of the Harbor-style configuration: %v\n%s", err, config)
	}
	if parsed.Storage.Type() != cos.DriverName || !parsed.Storage["delete"]["enabled"].(bool) {
		t.Fatalf("storage %v: want cos with deletes enabled (Harbor deletes through the API)", parsed.Storage)
	}
	params := parsed.Storage.Parameters()
	params["secretid"], params["secretkey"] = "AKIDexample", "example"
	if _, err := cos.ParseParameters(params); err != nil {
		t.Fatalf("cos.ParseParameters: %v", err)
	}
}
