# Parley on Cloud Run with Supabase Postgres: the service, a job that runs
# the migrations (a release step, before traffic moves), and the secrets
# they read from Secret Manager. Providers are pinned here; run
# `terraform init` where the registry is reachable.

terraform {
  required_version = ">= 1.5"
  required_providers {
    google = {
      source  = "hashicorp/google"
      version = "~> 6.0"
    }
  }
}

locals {
  # Settings that are not secret; an empty one is left unset.
  env = { for k, v in {
    PARLEY_AUTH_MODE                    = "supabase"
    PARLEY_PUBLIC_URL                   = var.public_url
    PARLEY_DEFAULT_REGION               = var.default_region
    SUPABASE_URL                        = var.supabase_url
    PARLEY_TWILIO_FROM                  = var.twilio_from
    PARLEY_TWILIO_MESSAGING_SERVICE_SID = var.twilio_messaging_service_sid
    PARLEY_DB_MAX_CONNS                 = tostring(var.db_max_conns)
    PARLEY_SHUTDOWN_GRACE               = "8s"
    PARLEY_JOB_TIMEOUT                  = "15s"
    PARLEY_JOB_RESCUE_AFTER             = "40s"
    # Google's front end appends the client to X-Forwarded-For (deploy/README.md).
    PARLEY_TRUSTED_PROXY_HOPS = "1"
  } : k => v if v != "" }
  # Environment variable => Secret Manager secret id: the eight secrets
  # deploy/README.md creates (a test holds the two lists equal).
  secrets = {
    DATABASE_URL              = "parley-database-url"
    PARLEY_ENCRYPTION_KEYS    = "parley-encryption-keys"
    PARLEY_BLIND_INDEX_KEY    = "parley-blind-index-key"
    PARLEY_SESSION_KEYS       = "parley-session-keys"
    SUPABASE_ANON_KEY         = "parley-supabase-anon-key"
    SUPABASE_SERVICE_ROLE_KEY = "parley-supabase-service-role-key"
    PARLEY_TWILIO_ACCOUNT_SID = "parley-twilio-account-sid"
    PARLEY_TWILIO_AUTH_TOKEN  = "parley-twilio-auth-token"
  }
  # /metrics answers only this bearer token; without it the service serves
  # no metrics (it is public).
  all_secrets = merge(local.secrets, var.metrics_token_secret == "" ? {} : {
    PARLEY_METRICS_TOKEN = var.metrics_token_secret
  })
}

resource "google_service_account" "parley" {
  project      = var.project
  account_id   = "parley"
  display_name = "Parley"
}

resource "google_secret_manager_secret_iam_member" "parley" {
  for_each  = local.all_secrets
  project   = var.project
  secret_id = each.value
  role      = "roles/secretmanager.secretAccessor"
  member    = "serviceAccount:${google_service_account.parley.email}"
}

resource "google_cloud_run_v2_service" "parley" {
  project  = var.project
  name     = "parley"
  location = var.region
  ingress  = "INGRESS_TRAFFIC_ALL"

  template {
    service_account = google_service_account.parley.email
    # Cloud Run sends SIGTERM and kills 10 s later; Parley drains in 8 s.
    timeout = "60s"
    scaling {
      min_instance_count = var.min_instances
      max_instance_count = var.max_instances
    }
    containers {
      image = var.image
      args  = ["serve"]
      ports {
        container_port = 8080
      }
      resources {
        limits = {
          cpu    = "1"
          memory = "512Mi"
        }
        # Queue workers run between requests: keep the CPU allocated.
        cpu_idle = false
      }
      dynamic "env" {
        for_each = local.env
        content {
          name  = env.key
          value = env.value
        }
      }
      dynamic "env" {
        for_each = local.all_secrets
        content {
          name = env.key
          value_source {
            secret_key_ref {
              secret  = env.value
              version = "latest"
            }
          }
        }
      }
      startup_probe {
        http_get {
          path = "/healthz"
        }
      }
      liveness_probe {
        http_get {
          path = "/healthz"
        }
      }
    }
  }
  depends_on = [google_secret_manager_secret_iam_member.parley]
}

# `parley migrate up` as a Cloud Run job: run it before moving traffic to a
# new revision (two at once are safe: the migrations take an advisory lock).
resource "google_cloud_run_v2_job" "migrate" {
  project  = var.project
  name     = "parley-migrate"
  location = var.region

  template {
    template {
      service_account = google_service_account.parley.email
      max_retries     = 1
      containers {
        image = var.image
        args  = ["migrate", "up"]
        env {
          name = "DATABASE_URL"
          value_source {
            secret_key_ref {
              secret  = local.secrets.DATABASE_URL
              version = "latest"
            }
          }
        }
      }
    }
  }
  depends_on = [google_secret_manager_secret_iam_member.parley]
}

# Platforms call the webhooks without credentials of Google's: the service
# is public, and every webhook's signature is checked by Parley.
resource "google_cloud_run_v2_service_iam_member" "public" {
  project  = var.project
  location = var.region
  name     = google_cloud_run_v2_service.parley.name
  role     = "roles/run.invoker"
  member   = "allUsers"
}
