output "url" {
  description = "The service's URL (set PARLEY_PUBLIC_URL to it, or to the domain in front of it)."
  value       = google_cloud_run_v2_service.parley.uri
}

output "migrate_job" {
  description = "Run before moving traffic: gcloud run jobs execute <this> --wait."
  value       = google_cloud_run_v2_job.migrate.name
}
