"""The desk's actions on a flagged public request on a real PostgreSQL: two managers acting
on one flag at once (the second waits for the first's row lock, then is told who handled it),
a date of birth saved on the record meanwhile (waited for, not overwritten), the new record
through the records' service and the merge of a maybe-known patient's new record."""

from tests.unit.test_request_flags import (  # noqa: F401
    test_a_change_requests_proposal_is_not_moved_to_a_new_record,
    test_a_date_of_birth_put_on_the_record_meanwhile_is_not_overwritten,
    test_a_date_of_birth_typed_for_a_record_with_none_is_added_in_one_click,
    test_a_flag_left_on_a_decided_request_is_offered_where_its_notice_is_shown,
    test_a_maybe_known_patient_on_a_decided_request_is_merged_with_its_visit,
    test_a_message_a_sender_holds_while_the_request_moves_is_not_sent,
    test_a_message_refused_at_the_first_records_address_is_not_retried_after_the_move,
    test_a_new_record_from_what_was_typed_gets_the_records_checks,
    test_a_new_record_merged_already_into_the_known_patient_is_offered_as_checked,
    test_a_new_record_whose_name_and_birthday_a_patient_has_says_so,
    test_a_proposal_replaced_after_its_message_went_is_written_again_for_the_new_record,
    test_a_proposal_that_reached_nobody_is_moved_saying_to_propose_it_again,
    test_a_request_decided_meanwhile_is_not_moved_to_a_new_record,
    test_a_request_paid_from_the_first_records_points_stays_saying_to_refund_first,
    test_a_typed_date_of_birth_goes_on_the_record_through_the_records_service,
    test_a_waiting_proposal_is_not_written_again_for_a_record_without_consent,
    test_an_acknowledgement_is_not_written_again_for_a_record_without_consent,
    test_maybe_a_known_patient_is_merged_into_theirs_through_the_merge_service,
    test_not_the_same_person_gets_the_consent_typed_to_each_channel,
    test_not_the_same_person_moves_a_request_with_a_time_proposed_and_its_link_answers,
    test_not_the_same_person_moves_the_request_to_a_new_record_made_from_what_was_typed,
    test_not_the_same_person_on_a_landline_gets_a_record_without_text_consent,
    test_not_the_same_person_takes_a_desk_payment_for_the_request_to_the_new_record,
    test_not_the_same_person_writes_the_waiting_acknowledgement_again_for_the_new_record,
    test_not_the_same_person_writes_the_waiting_proposal_again_for_the_new_record,
    test_two_managers_acting_on_one_flag_at_once_one_wins_the_other_is_told_who,
)
