package cos

import (
	"fmt"
	"os"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"
)

// parameterReferences are the pages whose parameter tables document every
// parameter, and the word their "Accepted" column puts between a range's
// bounds.
var parameterReferences = []struct{ path, to string }{
	{"docs/storage-driver.md", " to "},
	{"docs/zh-CN/storage-driver.md", " 至 "},
}

// TestParameterReferenceMatchesCode holds the parameter reference (the
// tables of docs/storage-driver.md in both languages) and the comments of
// cmd/registry/config-cos.yml to the code: every parameter has a row, its
// default is the code's, a numeric parameter's range is numericRanges',
// and region is required under the same rule as resolveEndpoints applies.
func TestParameterReferenceMatchesCode(t *testing.T) {
	defaults := parameterDefaults(t, parameterRows(t, parameterReferences[0].path))
	ranges := map[string]numericRange{}
	for _, r := range DefaultParameters().withDefaults().numericRanges() {
		ranges[r.name] = r
	}
	for _, ref := range parameterReferences {
		rows := parameterRows(t, ref.path)
		for _, name := range ParameterNames() {
			row, ok := rows[name]
			if !ok {
				t.Errorf("%s: no table row for parameter %s", ref.path, name)
				continue
			}
			if want, ok := defaults[name]; ok && !strings.Contains(row.def, "`"+want+"`") {
				t.Errorf("%s: %s: default column %q lacks the code's default `%s`", ref.path, name, row.def, want)
			}
			if r, ok := ranges[name]; ok {
				if want := r.describe(ref.to, "`"); !strings.Contains(row.accepted, want) {
					t.Errorf("%s: %s: accepted column %q lacks the code's range %s", ref.path, name, row.accepted, want)
				}
			}
		}
		// Region: required unless endpoint is the bucket's own host, in
		// any of the forms bucketHostPattern reads a region from.
		for _, host := range []string{".cos.<region>.myqcloud.com", ".cos.<region>.tencentcos.cn", ".cos-internal.<region>.tencentcos.cn"} {
			if !strings.Contains(rows["region"].def, host) {
				t.Errorf("%s: region's default column %q does not name the bucket host form <bucket>%s, from which the driver reads the region", ref.path, rows["region"].def, host)
			}
		}
	}

	data, err := os.ReadFile("cmd/registry/config-cos.yml")
	if err != nil {
		t.Fatal(err)
	}
	config := string(data)
	for _, name := range ParameterNames() {
		comment := configComment(config, name)
		if comment == "" {
			t.Errorf("config-cos.yml does not show parameter %s", name)
			continue
		}
		if r, ok := ranges[name]; ok {
			if want := r.describe(" to ", ""); !strings.Contains(comment, want) {
				t.Errorf("config-cos.yml: %s: comment %q lacks the code's range %s", name, comment, want)
			}
		}
		if want, ok := defaults[name]; ok && want != `""` && want != "false" && !strings.Contains(comment, want) {
			t.Errorf("config-cos.yml: %s: comment %q lacks the code's default %s", name, comment, want)
		}
	}
	if !strings.Contains(configComment(config, "region"), "unless endpoint is the bucket's own host") {
		t.Errorf("config-cos.yml: region's comment %q does not give the rule: required unless endpoint is the bucket's own host", configComment(config, "region"))
	}
}

// describe writes the range as the docs do: "`5MiB` to `100MiB`", with
// the bounds quoted by quote. maxbuffermemory's lower bound is chunksize.
func (r numericRange) describe(to, quote string) string {
	bound := func(v int64) string {
		if r.isDuration {
			return shortDuration(time.Duration(v))
		}
		return shortSize(v)
	}
	if r.name == "maxbuffermemory" {
		return quote + bound(r.max) + quote
	}
	return quote + bound(r.min) + quote + to + quote + bound(r.max) + quote
}

// shortSize writes a size as the docs do: 16MiB, 1.
func shortSize(n int64) string {
	for _, u := range []struct {
		size int64
		name string
	}{{gib, "GiB"}, {mib, "MiB"}, {kib, "KiB"}} {
		if n >= u.size && n%u.size == 0 {
			return fmt.Sprintf("%d%s", n/u.size, u.name)
		}
	}
	return fmt.Sprint(n)
}

// shortDuration writes a duration as the docs do: 2h, 15m, 1s.
func shortDuration(d time.Duration) string {
	switch {
	case d%time.Hour == 0:
		return fmt.Sprintf("%dh", d/time.Hour)
	case d%time.Minute == 0:
		return fmt.Sprintf("%dm", d/time.Minute)
	}
	return d.String()
}

// derivedDefaults are the parameters whose default follows others
// (maxbuffermemory: chunksize; internalendpoint: bucket and region), and
// the required ones.
var derivedDefaults = []string{"maxbuffermemory", "internalendpoint", "bucket", "region"}

// parameterDefaults are the code's defaults, as the docs write them, of the
// parameters with a fixed default; rows (the English reference) say which
// are sizes.
func parameterDefaults(t *testing.T, rows map[string]parameterRow) map[string]string {
	p := DefaultParameters().withDefaults()
	v := reflect.ValueOf(p)
	out := map[string]string{}
	for i := range v.NumField() {
		name := strings.ToLower(v.Type().Field(i).Name)
		if !contains(parameterNames, name) || contains(derivedDefaults, name) {
			continue
		}
		f := v.Field(i)
		switch {
		case f.Type() == reflect.TypeOf(time.Duration(0)):
			out[name] = shortDuration(time.Duration(f.Int()))
		case rows[name].typ == "size":
			out[name] = shortSize(f.Int())
		case (f.Kind() == reflect.String || f.Kind() == reflect.Slice) && f.Len() == 0:
			out[name] = `""`
		default:
			out[name] = fmt.Sprint(f.Interface())
		}
	}
	// Defaults applied where they are used (credentials_sts.go).
	out["stsendpoint"] = DefaultSTSEndpoint
	out["cvmmetadataurl"] = DefaultCVMMetadataURL
	for _, name := range ParameterNames() {
		if _, ok := out[name]; !ok && !contains(derivedDefaults, name) {
			t.Errorf("parameter %s has no field of Parameters named after it", name)
		}
	}
	return out
}

// parameterRow is a row of a parameter table.
type parameterRow struct{ typ, def, accepted string }

var parameterRowPattern = regexp.MustCompile("(?m)^\\| `([a-z]+)` \\|([^|]*)\\|([^|]*)\\|([^|]*)\\|")

// parameterRows reads the parameter tables of a page (name, type,
// default, accepted, meaning): each parameter's first row, as the
// reference tables come before any other.
func parameterRows(t *testing.T, path string) map[string]parameterRow {
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	rows := map[string]parameterRow{}
	for _, m := range parameterRowPattern.FindAllStringSubmatch(string(data), -1) {
		if !contains(parameterNames, m[1]) {
			continue
		}
		if _, seen := rows[m[1]]; seen {
			continue // a later table keyed by parameter values, not the reference
		}
		rows[m[1]] = parameterRow{typ: strings.TrimSpace(m[2]), def: strings.TrimSpace(m[3]), accepted: strings.TrimSpace(m[4])}
	}
	return rows
}

// configComment is the comment block above parameter name's line in
// config-cos.yml (set or commented out), with that line.
func configComment(config, name string) string {
	lines := strings.Split(config, "\n")
	for i, line := range lines {
		trimmed := strings.TrimLeft(strings.TrimSpace(line), "# ")
		if !strings.HasPrefix(trimmed, name+":") {
			continue
		}
		block := []string{line}
		for j := i - 1; j >= 0; j-- {
			above := strings.TrimSpace(lines[j])
			if !strings.HasPrefix(above, "#") || isParameterLine(above) {
				break
			}
			block = append([]string{above}, block...)
		}
		return strings.Join(block, " ")
	}
	return ""
}

// isParameterLine reports whether a config-cos.yml line is a parameter,
// commented out or not ("# maxretries: 5").
func isParameterLine(line string) bool {
	name, _, ok := strings.Cut(strings.TrimLeft(line, "# "), ":")
	return ok && contains(parameterNames, name)
}
