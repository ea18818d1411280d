// Checks Kubernetes manifests against the Kubernetes API's schemas, offline
// (scripts/check-manifests.sh installs the packages and runs this).
//
// Two checks per object, both must pass:
//  1. kubernetes-models: the object's JSON schema from the Kubernetes
//     OpenAPI spec (types, required fields, enums, formats), compiled to
//     ajv validators; it lets unknown fields through, so
//  2. @kubernetes/client-node's type maps (generated from the same spec):
//     every field of every nested object must be one the API knows, so a
//     typo ("replicass", "readinessprobe") fails instead of being dropped
//     silently by the API server.
//
//   node check.mjs FILE.yaml...     exit 0 if every object passes, else 1
import { readFileSync } from "node:fs";
import { parseAllDocuments } from "yaml";
import * as k8s from "@kubernetes/client-node";

// "apps/v1" -> ["apps", "v1"]; "v1" -> ["", "v1"].
function splitApiVersion(apiVersion) {
  const i = apiVersion.lastIndexOf("/");
  return i < 0 ? ["", apiVersion] : [apiVersion.slice(0, i), apiVersion.slice(i + 1)];
}

// Custom resources' schemas: the npm package of their kubernetes-models
// family, by API group.
const crdPackages = {
  "monitoring.coreos.com": "@kubernetes-models/prometheus-operator",
};

async function schemaCheck(obj) {
  const [group, version] = splitApiVersion(obj.apiVersion);
  const root = crdPackages[group] ?? "kubernetes-models";
  const groupDir = group ? group + "/" : "";
  const module = `${root}/${groupDir}${version}/${obj.kind}`;
  let Model;
  try {
    Model = (await import(module))[obj.kind];
  } catch (e) {
    return [`no schema for ${obj.apiVersion} ${obj.kind}`];
  }
  try {
    new Model(obj).validate();
    return [];
  } catch (e) {
    return [e.message];
  }
}

// Walks `value` as client-node type `type`, collecting unknown fields.
function strictCheck(value, type, path, errors) {
  if (value === null || value === undefined) return;
  let m = /^Array<(.+)>$/.exec(type);
  if (m) {
    if (Array.isArray(value)) value.forEach((v, i) => strictCheck(v, m[1], `${path}[${i}]`, errors));
    return;
  }
  m = /^\{ \[key: string\]: (.+); \}$/.exec(type);
  if (m) {
    if (typeof value === "object") {
      for (const [k, v] of Object.entries(value)) strictCheck(v, m[1], `${path}.${k}`, errors);
    }
    return;
  }
  const cls = k8s[type];
  if (!cls || typeof cls.getAttributeTypeMap !== "function") return;  // a scalar
  if (typeof value !== "object" || Array.isArray(value)) return;  // schemaCheck says
  const attrs = new Map(cls.getAttributeTypeMap().map((a) => [a.baseName, a.type]));
  for (const [k, v] of Object.entries(value)) {
    if (!attrs.has(k)) {
      errors.push(`${path}.${k}: unknown field (not in ${type})`);
    } else {
      strictCheck(v, attrs.get(k), `${path}.${k}`, errors);
    }
  }
}

function clientNodeType(obj) {
  const [, version] = splitApiVersion(obj.apiVersion);
  return version.charAt(0).toUpperCase() + version.slice(1) + obj.kind;
}

let failed = 0;
let checked = 0;
for (const file of process.argv.slice(2)) {
  const docs = parseAllDocuments(readFileSync(file, "utf8"), { prettyErrors: true });
  for (const doc of docs) {
    if (doc.errors.length) {
      for (const e of doc.errors) console.log(`${file}: YAML: ${e.message}`);
      failed++;
      continue;
    }
    const obj = doc.toJS();
    if (obj === null) continue;  // an empty document
    const where = `${file}: ${obj.kind ?? "?"} ${obj.metadata?.name ?? "?"}`;
    if (typeof obj.apiVersion !== "string" || typeof obj.kind !== "string") {
      console.log(`${where}: apiVersion and kind are required`);
      failed++;
      continue;
    }
    const errors = await schemaCheck(obj);
    const type = clientNodeType(obj);
    const [group] = splitApiVersion(obj.apiVersion);
    if (crdPackages[group]) {
      // client-node has no types for custom resources: their schema check
      // alone (which lets unknown fields through) is all there is.
    } else if (typeof k8s[type]?.getAttributeTypeMap !== "function") {
      errors.push(`no type ${type} in @kubernetes/client-node`);
    } else {
      strictCheck(obj, type, obj.kind, errors);
    }
    checked++;
    if (errors.length) {
      failed++;
      for (const e of errors) console.log(`${where}: ${e}`);
    } else {
      console.log(`${where}: ok`);
    }
  }
}
console.log(`${checked} objects checked, ${failed} failed`);
process.exit(failed || checked === 0 ? 1 : 0);
