// The jrsonnet baseline of `keelson-bench scale`: the same Applications,
// AppProjects, kustomize bases and overlays as keelson compiles from
// `Shape::standard(apps)` (bench/src/lib.rs), written the way a team would
// write them in Jsonnet. It decides nothing: the tags keelson selects are
// computed from the same rule the generator uses to make them up.
//
//   jrsonnet -S -m OUT --tla-code apps=N --tla-str only=all|applications scale.jsonnet
function(apps, only='all')
  local header = '# Generated from Jsonnet.\n';
  local yaml(v) = header + std.manifestYamlDoc(v, indent_array_in_object=false, quote_keys=false) + '\n';
  local stages(gated) = [s + (if gated then '-gated' else '') for s in ['dev', 'staging', 'prod']];
  local hex(n, width) = std.format('%0' + width + 'x', n);
  local app(i) = {
    local gated = i % 10 == 0,
    local kind = if gated then std.floor(i / 10) % 2 else i % 3,
    name: 'svc-' + i,
    cluster: 'w' + (i % 3),
    server: 'https://w' + (i % 3) + '.dc1.example.com:6443',
    stages: stages(gated),
    repo: if kind == 1 then '123456789012.dkr.ecr.eu-west-1.amazonaws.com/svc-' + i else 'ghcr.io/acme/svc-' + i,
    // What keelson pins: the first stage the tag (and the digest when the
    // strategy tracks one); promoted stages the upstream's digest as well.
    local digest(n) = 'sha256:' + hex(i, 56) + hex(n, 8),
    image(n): if kind == 0 then { newTag: '1.3.0' } + (if n > 0 then { digest: digest(4) } else {})
    else if kind == 1 then { newTag: 'main-' + hex(i * 16 + 5, 7) } + (if n > 0 then { digest: digest(5) } else {})
    else { newTag: 'stable', digest: digest(1) },
    wave: i % 4,  // the depends-on chains are 4 deep
    port: 8000 + i % 1000,
  };
  local application(a, n, stage) = {
    apiVersion: 'argoproj.io/v1alpha1',
    kind: 'Application',
    metadata: {
      name: a.name + '-' + stage,
      namespace: 'argocd',
      annotations: { 'argocd.argoproj.io/sync-wave': std.toString(a.wave) },
      finalizers: ['resources-finalizer.argocd.argoproj.io'],
    },
    spec: {
      project: a.name,
      source: {
        repoURL: 'https://git.example.com/platform/gitops.git',
        targetRevision: 'main',
        path: 'k8s/' + a.name + '/overlays/' + stage,
      },
      destination: { server: a.server, namespace: a.name + '-s' + n },
      syncPolicy: {
        automated: { prune: true, selfHeal: true },
        syncOptions: ['CreateNamespace=true'],
      },
    },
  };
  local project(a) = {
    apiVersion: 'argoproj.io/v1alpha1',
    kind: 'AppProject',
    metadata: {
      name: a.name,
      namespace: 'argocd',
      annotations: { 'argocd.argoproj.io/sync-wave': '-3' },
      finalizers: ['resources-finalizer.argocd.argoproj.io'],
    },
    spec: {
      description: 'Derived by keelson for app `' + a.name + '`: only its own destinations and sources',
      sourceRepos: ['https://git.example.com/platform/gitops.git'],
      destinations: [{ server: a.server, namespace: a.name + '-s' + n } for n in [0, 1, 2]],
      clusterResourceWhitelist: [{ group: '', kind: 'Namespace' }],
    },
  };
  local labels(a) = { 'app.kubernetes.io/name': a.name };
  local base(a) = {
    ['k8s/' + a.name + '/base/kustomization.yaml']: yaml({
      apiVersion: 'kustomize.config.k8s.io/v1beta1',
      kind: 'Kustomization',
      resources: ['deployment.yaml', 'service.yaml'],
    }),
    ['k8s/' + a.name + '/base/deployment.yaml']: yaml({
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: { name: a.name, labels: labels(a) },
      spec: {
        replicas: 1,
        selector: { matchLabels: labels(a) },
        template: {
          metadata: { labels: labels(a) },
          spec: { containers: [{
            name: a.name,
            image: a.repo,
            ports: [{ name: 'http', containerPort: a.port }],
          }] },
        },
      },
    }),
    ['k8s/' + a.name + '/base/service.yaml']: yaml({
      apiVersion: 'v1',
      kind: 'Service',
      metadata: { name: a.name, labels: labels(a) },
      spec: { selector: labels(a), ports: [{ name: 'http', port: 80, targetPort: 'http' }] },
    }),
  };
  local overlay(a, n) = yaml({
    apiVersion: 'kustomize.config.k8s.io/v1beta1',
    kind: 'Kustomization',
    resources: ['../../base'],
    images: [{ name: a.repo } + a.image(n)],
  });
  local all = [app(i) for i in std.range(0, apps - 1)];
  local applications = {
    ['apps/dc1/' + a.cluster + '/' + a.name + '-' + a.stages[n] + '.yaml']: yaml(application(a, n, a.stages[n]))
    for a in all
    for n in [0, 1, 2]
  };
  if only == 'applications' then applications
  else applications
       + { ['apps/dc1/_keelson/project-' + a.name + '.yaml']: yaml(project(a)) for a in all }
       + { [f.key]: f.value for a in all for f in std.objectKeysValues(base(a)) }
       + {
         ['k8s/' + a.name + '/overlays/' + a.stages[n] + '/kustomization.yaml']: overlay(a, n)
         for a in all
         for n in [0, 1, 2]
       }
