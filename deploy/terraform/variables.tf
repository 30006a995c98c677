variable "project" {
  description = "Google Cloud project id."
  type        = string
}

variable "region" {
  description = "Cloud Run region, near the Supabase project's."
  type        = string
  default     = "asia-south1"
}

variable "image" {
  description = "The Parley image (built from the repository's Dockerfile), by digest."
  type        = string
}

variable "public_url" {
  description = "The URL platforms call (PARLEY_PUBLIC_URL): Twilio signs over it."
  type        = string
}

variable "supabase_url" {
  description = "The Supabase project URL, https://<ref>.supabase.co."
  type        = string
}

variable "default_region" {
  description = "Region for phone numbers typed without a country code."
  type        = string
  default     = "IN"
}

variable "twilio_from" {
  description = "The Twilio number replies are sent from (+14155550100, or whatsapp:+14155550100); this or twilio_messaging_service_sid."
  type        = string
  default     = ""
}

variable "twilio_messaging_service_sid" {
  description = "A Twilio Messaging Service SID (MG…) to send through, instead of twilio_from."
  type        = string
  default     = ""
}

variable "metrics_token_secret" {
  description = "Secret Manager secret id holding PARLEY_METRICS_TOKEN (/metrics asks for it as a bearer token); empty: no metrics served."
  type        = string
  default     = ""
}

variable "min_instances" {
  description = "Instances kept running; one keeps timers and retries on time."
  type        = number
  default     = 1
}

variable "max_instances" {
  description = "Most instances; each holds up to db_max_conns database connections."
  type        = number
  default     = 4
}

variable "db_max_conns" {
  description = "Connections per instance; max_instances times this must fit the pooler's pool size."
  type        = number
  default     = 20
}
