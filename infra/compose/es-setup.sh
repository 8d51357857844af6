#!/usr/bin/env bash
# One-shot set-up of the compose stack's Elasticsearch (runs in the Elasticsearch image, as root):
#  1. a CA and TLS certificates for Elasticsearch (and Kibana) into the `certs` volume, once;
#  2. once Elasticsearch answers: the kibana_system password, the `vigil` role and user the services connect as,
#     and the `vigil_console` role and user only the console has (its accounts, sessions and key).
# Passwords come from the operator's env file (infra/compose/.env); nothing is generated into the logs.
set -euo pipefail
: "${ELASTIC_PASSWORD:?set ELASTIC_PASSWORD in infra/compose/.env}"
: "${KIBANA_PASSWORD:?set KIBANA_PASSWORD in infra/compose/.env}"
: "${VIGIL_ES_PASSWORD:?set VIGIL_ES_PASSWORD in infra/compose/.env}"
: "${VIGIL_CONSOLE_ES_PASSWORD:?set VIGIL_CONSOLE_ES_PASSWORD in infra/compose/.env}"
certs=config/certs

if [ ! -f "$certs/ca/ca.crt" ]; then
  echo "creating the CA"
  bin/elasticsearch-certutil ca --silent --pem -out "$certs/ca.zip"
  unzip -q -o "$certs/ca.zip" -d "$certs"
fi
if [ ! -f "$certs/elasticsearch/elasticsearch.crt" ]; then
  echo "creating certificates"
  cat > "$certs/instances.yml" <<YML
instances:
  - name: elasticsearch
    dns: [elasticsearch, localhost]
    ip: [127.0.0.1]
  - name: kibana
    dns: [kibana, localhost]
    ip: [127.0.0.1]
YML
  bin/elasticsearch-certutil cert --silent --pem -out "$certs/certs.zip" --in "$certs/instances.yml" \
    --ca-cert "$certs/ca/ca.crt" --ca-key "$certs/ca/ca.key"
  unzip -q -o "$certs/certs.zip" -d "$certs"
fi
# Elasticsearch and Kibana run as uid 1000 gid 0, Vigil as uid 10001 gid 0: group 0 reads, the CA key stays root's
chown -R root:0 "$certs"
find "$certs" -type d -exec chmod 750 {} +
find "$certs" -type f -exec chmod 640 {} +
chmod 600 "$certs/ca/ca.key"
touch "$certs/.ready"

es() { curl -sS --fail-with-body --cacert "$certs/ca/ca.crt" -u "elastic:$ELASTIC_PASSWORD" -H 'Content-Type: application/json' "$@"; }
echo "waiting for Elasticsearch"
for _ in $(seq 1 120); do
  es -o /dev/null https://elasticsearch:9200/_cluster/health 2>/dev/null && break
  sleep 5
done
es -o /dev/null https://elasticsearch:9200/_cluster/health

echo "kibana_system password"
es -o /dev/null -X POST https://elasticsearch:9200/_security/user/kibana_system/_password \
  -d "{\"password\": \"$KIBANA_PASSWORD\"}"

# the roles of infra/elasticsearch/roles/ for the prefix `vigil`: the services' role does not cover the console's index
echo "role and user vigil"
es -o /dev/null -X PUT https://elasticsearch:9200/_security/role/vigil -d '{
  "cluster": ["monitor", "manage_index_templates", "manage_ilm"],
  "indices": [{"names": ["/vigil-.*&~(vigil-console-.*)/"], "privileges": ["all"]}]
}'
es -o /dev/null -X PUT https://elasticsearch:9200/_security/user/vigil \
  -d "{\"password\": \"$VIGIL_ES_PASSWORD\", \"roles\": [\"vigil\", \"kibana_admin\"], \"full_name\": \"Vigil services\"}"
echo "role and user vigil_console"
es -o /dev/null -X PUT https://elasticsearch:9200/_security/role/vigil_console -d '{
  "cluster": ["monitor"],
  "indices": [{"names": ["vigil-console-*"], "privileges": ["all"]}]
}'
es -o /dev/null -X PUT https://elasticsearch:9200/_security/user/vigil_console \
  -d "{\"password\": \"$VIGIL_CONSOLE_ES_PASSWORD\", \"roles\": [\"vigil_console\"], \"full_name\": \"Vigil console\"}"
echo "done"
