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

# section 6: the events we publish
SOURCE_SERVICE = "result_aggregator_service"
RESULTS_READY_TOPIC = "huleedu.ras.batch.results.ready.v1"
ASSESSMENT_COMPLETED_TOPIC = "huleedu.ras.batch.assessment.completed.v1"
TEACHER_NOTIFICATION_TOPIC = "huleedu.notification.teacher.requested.v1"
RESULTS_READY_EVENT_NAME = "batch.results.ready"
ASSESSMENT_COMPLETED_EVENT_NAME = "batch.assessment.completed"
# notification_type -> priority
NOTIFICATION_PRIORITY = {"batch_results_ready": "high", "batch_assessment_completed": "standard"}
NOTIFICATION_CATEGORY = "processing_results"
TERMINAL_STATUSES = {"completed_successfully", "completed_with_failures", "failed_critically", "cancelled"}
EARLY_STATUSES = {"failed_critically", "cancelled"}  # emit as soon as registered and terminal
