// The release: LICENSE, SECURITY.md, CHANGELOG.md and the version policy are there; the CI and
// release workflows pass actionlint (a broken one does not) and publish what the chart installs
// by default; the release scripts refuse a tag the versions do not agree with.
import test from 'ava';
import { execFile } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse as parseYaml } from 'yaml';
// @ts-expect-error: a plain .mjs script without type declarations
import { changelogSection, releaseProblems, versionOfTag } from '../scripts/release-notes.mjs';
import { ROOT } from './helpers/cli.js';

const ACTIONLINT = join(ROOT, '.tools', 'bin', 'actionlint');
const read = (p: string) => readFileSync(join(ROOT, p), 'utf8');
const workflow = (name: string) => parseYaml(read(`.github/workflows/${name}`));

function run(cmd: string, args: string[], cwd = ROOT): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(cmd, args, { cwd }, (err, stdout, stderr) =>
      resolve({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    );
  });
}

test('actionlint passes the workflows, and fails a workflow with a mistake in it', async (t) => {
  const ok = await run(ACTIONLINT, ['-no-color', '.github/workflows/ci.yml', '.github/workflows/release.yml']);
  t.is(ok.code, 0, ok.stdout + ok.stderr);
  const dir = mkdtempSync(join(tmpdir(), 'mcp-authz-actionlint-'));
  mkdirSync(join(dir, '.github', 'workflows'), { recursive: true });
  const broken = read('.github/workflows/release.yml')
    .replace('runs-on: ubuntu-24.04', 'runs-on: ubuntu-24.04\n    need: test')
    .replace('${{ needs.test.outputs.version }}', '${{ needs.tests.outputs.version }}');
  writeFileSync(join(dir, '.github', 'workflows', 'release.yml'), broken);
  const bad = await run(ACTIONLINT, ['-no-color', '.github/workflows/release.yml'], dir);
  t.is(bad.code, 1);
  t.regex(bad.stdout, /unexpected key "need"/);
  t.regex(bad.stdout, /"tests"/);
});

test('CI runs .ci/run on pushes to main and on pull requests, on the Go the tools need', (t) => {
  const ci = workflow('ci.yml');
  t.deepEqual(ci.on.push.branches, ['main']);
  t.true('pull_request' in ci.on);
  const steps = ci.jobs.test.steps as { run?: string; uses?: string; with?: Record<string, string> }[];
  t.true(steps.some((s) => s.run === 'bash .ci/run'));
  t.is(steps.find((s) => s.uses?.startsWith('actions/setup-go'))?.with?.['go-version'], '1.26');
  t.deepEqual(ci.permissions, { contents: 'read' });
});

test('a v* tag tests, then pushes the signed multi-arch image, its SBOM, the signed OCI chart and a release with the changelog section', (t) => {
  const r = workflow('release.yml');
  t.deepEqual(r.on, { push: { tags: ['v*'] } });
  t.deepEqual(r.permissions, { contents: 'read' }, 'least privilege by default; jobs ask for more');
  const { test: tst, image, chart, 'github-release': rel } = r.jobs;
  t.true(tst.steps.some((s: { run?: string }) => s.run === 'bash .ci/run'));
  t.true(tst.steps.some((s: { run?: string }) => s.run?.includes('scripts/release-notes.mjs --check "$TAG"')));
  t.deepEqual(image.needs, 'test');
  const build = image.steps.find((s: { uses?: string }) => s.uses?.startsWith('docker/build-push-action'));
  t.is(build.with.platforms, 'linux/amd64,linux/arm64');
  t.true(build.with.push);
  t.is(build.with.tags, '${{ env.IMAGE }}:${{ env.VERSION }}');
  t.true(image.steps.some((s: { run?: string }) => s.run === 'cosign sign --yes "$IMAGE@$DIGEST"'));
  t.true(
    image.steps.some(
      (s: { uses?: string; with?: { format?: string } }) =>
        s.uses?.startsWith('anchore/sbom-action') && s.with?.format === 'spdx-json',
    ),
  );
  t.true(image.steps.some((s: { run?: string }) => s.run?.startsWith('cosign attest --yes --type spdxjson')));
  t.like(image.permissions, { packages: 'write', 'id-token': 'write' });
  t.true(
    chart.steps.some((s: { run?: string }) =>
      s.run?.includes('helm push "dist-chart/mcp-authz-$VERSION.tgz" "oci://$CHART_REPO"'),
    ),
  );
  t.true(chart.steps.some((s: { run?: string }) => s.run === 'cosign sign --yes "$CHART_REPO/mcp-authz@$DIGEST"'));
  t.true(
    rel.steps.some((s: { run?: string }) => s.run?.includes('node scripts/release-notes.mjs "v$VERSION" > notes.md')),
  );
  t.like(rel.permissions, { contents: 'write' });
  // What it pushes, for the owner the chart names (the mcp-authz organisation), is the chart's default image.
  const image_ = r.env.IMAGE.replace('${{ github.repository_owner }}', 'mcp-authz');
  const values = parseYaml(read('helm/mcp-authz/values.yaml'));
  t.is(values.image.repository, image_);
  t.is(values.image.tag, '', 'the tag defaults to the appVersion the workflow checks against the git tag');
});

test('the release check refuses a tag that is not semver or that package.json, the chart or the changelog disagree with', (t) => {
  t.is(versionOfTag('v1.2.3'), '1.2.3');
  t.is(versionOfTag('v1.2.3-rc.1'), '1.2.3-rc.1');
  for (const bad of ['1.2.3', 'v1.2', 'v01.2.3', 'v1.2.3+x y']) t.throws(() => versionOfTag(bad), undefined, bad);

  const dir = mkdtempSync(join(tmpdir(), 'mcp-authz-release-'));
  mkdirSync(join(dir, 'helm', 'mcp-authz'), { recursive: true });
  copyFileSync(join(ROOT, 'package.json'), join(dir, 'package.json'));
  copyFileSync(join(ROOT, 'helm', 'mcp-authz', 'Chart.yaml'), join(dir, 'helm', 'mcp-authz', 'Chart.yaml'));
  const version = JSON.parse(read('package.json')).version as string;
  writeFileSync(
    join(dir, 'CHANGELOG.md'),
    `# Changelog\n\n## [Unreleased]\n\n## [${version}] - 2027-01-01\n\n### Added\n- the first release\n\n## [0.0.1] - 2026-01-01\n- old\n`,
  );
  t.deepEqual(releaseProblems(dir, `v${version}`), []);
  t.deepEqual(
    releaseProblems(dir, 'v9.9.9').length,
    4,
    'package.json, the chart version and appVersion, and the changelog',
  );
  t.is(changelogSection(readFileSync(join(dir, 'CHANGELOG.md'), 'utf8'), version), '### Added\n- the first release');
});

test('LICENSE is the Apache License 2.0 package.json names; SECURITY.md says how to report and what is supported; CHANGELOG.md keeps an Unreleased section', (t) => {
  t.is(JSON.parse(read('package.json')).license, 'Apache-2.0');
  const license = read('LICENSE');
  t.regex(license, /Apache License\s+Version 2\.0, January 2004/);
  t.regex(license, /END OF TERMS AND CONDITIONS/);
  const security = read('SECURITY.md');
  t.regex(security, /## Reporting a vulnerability[\s\S]*Report a vulnerability/);
  t.regex(security, /## Supported versions\n\n\| version \| supported \|/);
  const changelog = read('CHANGELOG.md');
  t.regex(changelog, /^## \[Unreleased\]\n\n### (Added|Changed|Removed|Fixed|Security|Deprecated)\n/m);
  t.regex(read('docs/releasing.md'), /## Versions[\s\S]*public contract[\s\S]*CLI[\s\S]*metric/);
});

test("the chart names its home, sources and maintainers, and its version is the package's", (t) => {
  const chart = parseYaml(read('helm/mcp-authz/Chart.yaml'));
  t.is(chart.home, 'https://github.com/mcp-authz/mcp-authz');
  t.deepEqual(chart.sources, ['https://github.com/mcp-authz/mcp-authz']);
  t.true(
    chart.maintainers.length > 0 &&
      chart.maintainers.every((m: { name?: string }) => typeof m.name === 'string' && m.name.length > 0),
  );
  const version = JSON.parse(read('package.json')).version;
  t.is(chart.version, version);
  t.is(chart.appVersion, version);
});
