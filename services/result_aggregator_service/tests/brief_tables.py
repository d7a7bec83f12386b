"""Tables of the product brief, written out by hand as the tests' oracle (not imported from the code)."""

# section 3: internal BatchStatus → BatchClientStatus
CLIENT_STATUS = {
    "awaiting_content_validation": "pending_content",
    "awaiting_pipeline_configuration": "pending_content",
    "content_ingestion_failed": "failed",
    "failed_critically": "failed",
    "ready_for_pipeline_execution": "ready",
    "processing_pipelines": "processing",
    "awaiting_student_validation": "processing",
    "student_validation_completed": "processing",
    "validation_timeout_processed": "processing",
    "completed_successfully": "completed_successfully",
    "completed_with_failures": "completed_with_failures",
    "cancelled": "cancelled",
}
